/* av_input.h — a media file held in memory, opened with libavformat: what video.c and audio.c's
 * FFmpeg path share (the memory AVIO, FFmpeg's log level, the demuxer and its stream info). */
#ifndef NX_AV_INPUT_H
#define NX_AV_INPUT_H

#include "nextgpt.h"

#include <libavformat/avformat.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_av_input {
    AVFormatContext *fmt;   /* opened, stream info read */
    AVIOContext     *io;
    const uint8_t   *buf;   /* the caller's bytes (not copied) */
    int64_t          len, pos;
} nx_av_input;

/* Open buf[0, len) with libavformat and read its stream info. `name` and `what` ("video",
 * "audio") label messages: NGPT_ERR_BAD_FORMAT "<name>: not a readable <what> file (<our reading>): <FFmpeg's
 * reason>". *in must be zeroed; on failure it is left for nx_av_input_close (which is always
 * safe to call). The first call quiets FFmpeg's logging (see video.c). */
ngpt_status nx_av_input_open(nx_av_input *in, const uint8_t *buf, size_t len, const char *name, const char *what);
void nx_av_input_close(nx_av_input *in);

/* Quiet FFmpeg's process-wide logging once, if the application left it at FFmpeg's default
 * (every entry into libavformat/libavcodec calls this first). */
void nx_av_quiet(void);

/* FFmpeg's text for an error code, in buf. */
const char *nx_av_err(int e, char *buf, size_t n);

#endif
