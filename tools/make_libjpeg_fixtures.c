/* make_libjpeg_fixtures.c — JPEGs that Pillow cannot write, through libjpeg's C API, for
 * tests/data/media (see tools/make_media_fixtures.py) and robustness sweeps. Not built by meson:
 *
 *     cc tools/make_libjpeg_fixtures.c -o /tmp/mkjpeg -ljpeg
 *     /tmp/mkjpeg OUT W H MODE
 *
 * MODE: ycck | cmyk_adobe | rgb (no colour transform) | samp:H0xV0,H1xV1,H2xV2 (sampling
 * factors of Y, Cb, Cr) | rst (a restart marker every MCU row) | rst7 | arith | prog_arith.
 * The pixels are a deterministic pattern of (x, y, component). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s OUT W H MODE\n", argv[0]);
        return 2;
    }
    const char *out = argv[1];
    int w = atoi(argv[2]), h = atoi(argv[3]);
    const char *mode = argv[4];
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    int cmyk = !strcmp(mode, "ycck") || !strcmp(mode, "cmyk_adobe");
    c.input_components = cmyk ? 4 : 3;
    c.in_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 85, TRUE);
    if (!strcmp(mode, "ycck")) jpeg_set_colorspace(&c, JCS_YCCK);
    if (!strcmp(mode, "rgb")) jpeg_set_colorspace(&c, JCS_RGB);
    if (!strncmp(mode, "samp:", 5)) {
        int s[6];
        sscanf(mode + 5, "%dx%d,%dx%d,%dx%d", &s[0], &s[1], &s[2], &s[3], &s[4], &s[5]);
        for (int i = 0; i < 3; i++) { c.comp_info[i].h_samp_factor = s[2 * i]; c.comp_info[i].v_samp_factor = s[2 * i + 1]; }
    }
    if (!strcmp(mode, "rst")) c.restart_in_rows = 1;
    if (!strcmp(mode, "rst7")) c.restart_interval = 7;
    if (!strcmp(mode, "arith")) c.arith_code = TRUE;
    if (!strcmp(mode, "prog_arith")) { c.arith_code = TRUE; jpeg_simple_progression(&c); }
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * c.input_components);
    while (c.next_scanline < c.image_height) {
        int y = c.next_scanline;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c.input_components; k++)
                row[x * c.input_components + k] = (unsigned char)((x * 7 + y * 3 + k * 50 + ((x ^ y) & 15) * 4) & 255);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    fclose(f);
    return 0;
}
