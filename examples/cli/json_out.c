/* JSON strings for --json output: any bytes the user gave come back as valid JSON. */
#include "cli.h"

/* Length of the valid UTF-8 sequence at p (1..4), 0 when p does not start one. */
static int utf8_seq(const unsigned char *p)
{
    int n = p[0] < 0x80 ? 1 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
          : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++) {
        unsigned lo = 0x80, hi = 0xBF;
        if (i == 1 && p[0] == 0xE0) lo = 0xA0;
        if (i == 1 && p[0] == 0xED) hi = 0x9F;
        if (i == 1 && p[0] == 0xF0) lo = 0x90;
        if (i == 1 && p[0] == 0xF4) hi = 0x8F;
        if (p[i] < lo || p[i] > hi) return 0;
    }
    return n;
}

/* A JSON string: escapes, and U+FFFD for each byte that is not valid UTF-8 (user input may be
 * any bytes), so that the output always parses. */
void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_seq(p);
        if (n == 0) { fputs("\\ufffd", f); p++; continue; }
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fwrite(p, 1, (size_t)n, f);
        p += n;
    }
    fputc('"', f);
}
