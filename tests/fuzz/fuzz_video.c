/* fuzz_video.c — video files (whatever this build's libavformat/libavcodec read) through
 * ImageBind's video transform: clip sampling, frame seeking, rotation, scaling, crops. */
#include "fuzz_media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t blocks = nx_alloc_blocks();
    ngpt_tensor t = {0};
    const ngpt_status st = ngpt_video_preprocess_memory(&t, data, size, "fuzz video", NULL);
    fuzz_status("ngpt_video_preprocess_memory", st);
    static const int64_t shape[5] = {15, 3, 2, 224, 224};
    if (st == NGPT_OK) fuzz_check_tensor("video", &t, 5, shape);
    ngpt_tensor_free(&t);
    fuzz_no_leak("video", blocks);
    return 0;
}
