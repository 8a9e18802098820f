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

#endif
