/* av_input.c — see av_input.h. */
#include "av_input.h"

#include "../core/error.h"

#include <pthread.h>
#include <string.h>

static int mem_read(void *u, uint8_t *dst, int n)
{
    nx_av_input *m = u;
    int64_t left = m->len - m->pos;
    if (left <= 0) return AVERROR_EOF;
    if (n > left) n = (int)left;
    memcpy(dst, m->buf + m->pos, (size_t)n);
    m->pos += n;
    return n;
}

static int64_t mem_seek(void *u, int64_t off, int whence)
{
    nx_av_input *m = u;
    if (whence & AVSEEK_SIZE) return m->len;
    whence &= ~AVSEEK_FORCE;
    int64_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;
    if (p < 0 || p > m->len) return -1;
    m->pos = p;
    return p;
}

/* av_log's level is process-wide: quiet it only if it is still FFmpeg's default, so that an
 * application that configured av_log keeps its setting. */
static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
static void quiet_ffmpeg(void)
{
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET);
}

void nx_av_quiet(void)
{
    pthread_once(&g_log_once, quiet_ffmpeg);
}

const char *nx_av_err(int e, char *buf, size_t n)
{
    av_strerror(e, buf, n);
    return buf;
}

ngpt_status nx_av_input_open(nx_av_input *in, const uint8_t *buf, size_t len, const char *name, const char *what)
{
    nx_av_quiet();
    if (len == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: empty file, not %s %s file", name,
                                what[0] == 'a' ? "an" : "a", what);
    in->buf = buf;
    in->len = (int64_t)len;
    in->pos = 0;
    char eb[128];
    int r;
    uint8_t *iobuf = av_malloc(65536);
    if (!iobuf || !(in->io = avio_alloc_context(iobuf, 65536, 0, in, mem_read, NULL, mem_seek)) ||
        !(in->fmt = avformat_alloc_context())) {
        if (!in->io) av_free(iobuf);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate a demuxer", name);
    }
    in->fmt->pb = in->io;
    /* FFmpeg answers EINVAL when no demuxer recognises the bytes, which alone reads like a bad call. */
    if ((r = avformat_open_input(&in->fmt, NULL, NULL, NULL)) < 0) /* frees the context on failure */
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a readable %s file (%s): %s", name, what,
                      r == AVERROR(EINVAL) || r == AVERROR_INVALIDDATA ? "unknown format, or cut short"
                                                                      : "the demuxer failed",
                      nx_av_err(r, eb, sizeof eb));
    if ((r = avformat_find_stream_info(in->fmt, NULL)) < 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: cannot read stream info: %s", name, nx_av_err(r, eb, sizeof eb));
    return NGPT_OK;
}

void nx_av_input_close(nx_av_input *in)
{
    if (in->fmt) avformat_close_input(&in->fmt);
    if (in->io) {
        av_freep(&in->io->buffer);
        avio_context_free(&in->io);
    }
}
