/* modality.h — the three media kinds NExT-GPT reads and writes. */
#ifndef NX_MODALITY_H
#define NX_MODALITY_H

typedef enum nx_modality {
    NX_MODALITY_IMAGE = 0,
    NX_MODALITY_VIDEO = 1,
    NX_MODALITY_AUDIO = 2
} nx_modality;

#define NX_MODALITY_COUNT 3

/* "image", "video", "audio"; "?" for other values. */
static inline const char *nx_modality_name(nx_modality m)
{
    return m == NX_MODALITY_IMAGE ? "image" : m == NX_MODALITY_VIDEO ? "video" : m == NX_MODALITY_AUDIO ? "audio" : "?";
}

/* The public ngpt_modality (IMAGE 1, AUDIO 2, VIDEO 3; nextgpt.h) <-> nx_modality (an array
 * index): the one place the two numberings meet. -1 for TEXT or unknown values. */
static inline int nx_modality_from_api(int api)
{
    return api == 1 ? NX_MODALITY_IMAGE : api == 2 ? NX_MODALITY_AUDIO : api == 3 ? NX_MODALITY_VIDEO : -1;
}
static inline int nx_modality_to_api(nx_modality m)
{
    return m == NX_MODALITY_IMAGE ? 1 : m == NX_MODALITY_AUDIO ? 2 : 3;
}

#endif
