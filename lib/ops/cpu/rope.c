/* rope.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_rope(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos,
                        int n_rot, float theta, nx_rope_mode mode)
{
    (void)be;
    (void)y;
    (void)x;
    (void)pos;
    (void)n_rot;
    (void)theta;
    (void)mode;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: rope is not implemented yet");
}
