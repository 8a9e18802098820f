/* wino_f43.h — the matrices of Winograd's F(4, 3) with the points 0, +-1, +-2 and infinity
 * (Lavin & Gray): B^T (6 x 6, input), G (6 x 3, filter) and A^T (4 x 6, output). The 1-D
 * Winograd (wino1d.c) uses them along one axis, the 2-D one (wino2d.c) along both. */
#ifndef NX_WINO_F43_H
#define NX_WINO_F43_H

enum { NX_W43_T = 4, NX_W43_A = 6, NX_W43_R = 3 };

static const float NX_W43_BT[NX_W43_A][NX_W43_A] = {
    {4.f, 0.f, -5.f, 0.f, 1.f, 0.f},  {0.f, -4.f, -4.f, 1.f, 1.f, 0.f}, {0.f, 4.f, -4.f, -1.f, 1.f, 0.f},
    {0.f, -2.f, -1.f, 2.f, 1.f, 0.f}, {0.f, 2.f, -1.f, -2.f, 1.f, 0.f}, {0.f, 4.f, 0.f, -5.f, 0.f, 1.f},
};
static const float NX_W43_G[NX_W43_A][NX_W43_R] = {
    {1.f / 4, 0.f, 0.f},           {-1.f / 6, -1.f / 6, -1.f / 6}, {-1.f / 6, 1.f / 6, -1.f / 6},
    {1.f / 24, 1.f / 12, 1.f / 6}, {1.f / 24, -1.f / 12, 1.f / 6}, {0.f, 0.f, 1.f},
};
static const float NX_W43_AT[NX_W43_T][NX_W43_A] = {
    {1.f, 1.f, 1.f, 1.f, 1.f, 0.f},
    {0.f, 1.f, -1.f, 2.f, -2.f, 0.f},
    {0.f, 1.f, 1.f, 4.f, 4.f, 0.f},
    {0.f, 1.f, -1.f, 8.f, -8.f, 1.f},
};

#endif
