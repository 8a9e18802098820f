/* fftconv1d_lanes.h — the DFT conv1d's lane-parallel transforms, written once for a vector of
 * FC_W floats: the forward DFTs of a chunk's columns (dft32 + forward) and the inverse DFTs with
 * bias, activation and the store to y or YP (inverse). A vector's lanes are FC_W columns (blocks);
 * FC_TR turns FC_W rows of FC_W samples into FC_W vectors of one sample each, and back.
 *
 * fftconv1d.c includes this file once per vector width (AVX-512: 16 lanes, AVX2: 8), after
 * defining FC_W, FC_TARGET (the function attribute), FC_SFX (the names' suffix), fvec and fmask
 * (the vector and lane-mask types), the V* operations and FC_TR; it undefines them all at its end.
 * Not a public or a general header: it reads fc_job, NB, NBIN, NPROD and g_cos / g_sin. */

#define FC_CAT2(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT2(a, b)
#define FC_NAME(n) FC_CAT(n, FC_SFX)

/* The 17 bins of FC_W real 32-sample sequences (lanes) as Karatsuba's three factors: bin f's
 * real part to v + f bs, its imaginary part to v + f bs + ps and their sum to v + f bs + 2 ps;
 * bin 0's first two slots take the DC and the Nyquist term. With e_i = s_i + s_{32-i} and
 * o_i = s_i - s_{32-i} (i = 1..15), and bins f and 16 - f sharing the even- and odd-i halves of
 * their sums (cos(2 pi (16 - f) i / 32) = (-1)^i cos(2 pi f i / 32), sin(...) = (-1)^(i+1)
 * sin(...)), it is ~300 vector operations instead of the plain DFT's 1024 multiply-adds. */
static FC_TARGET inline void FC_NAME(dft32)(const fvec *s, float *v, int64_t ps, int64_t bs)
{
    fvec e[16], o[16];
    for (int i = 1; i < 16; i++) {
        e[i] = VADD(s[i], s[NB - i]);
        o[i] = VSUB(s[i], s[NB - i]);
    }
    const fvec s0p = VADD(s[0], s[16]), s0m = VSUB(s[0], s[16]);
    fvec ev = e[2], od = e[1];
    for (int i = 4; i < 16; i += 2) ev = VADD(ev, e[i]);
    for (int i = 3; i < 16; i += 2) od = VADD(od, e[i]);
    VSTORE(v, VADD(s0p, VADD(ev, od)));      /* DC */
    VSTORE(v + ps, VADD(s0p, VSUB(ev, od))); /* Nyquist */
    for (int f = 1; f <= 8; f++) {
        fvec re_e = VZERO(), re_o = re_e, im_e = re_e, im_o = re_e;
        for (int i = 2; i < 16; i += 2) {
            re_e = VFMA(VSET1(g_cos[f][i]), e[i], re_e);
            im_e = VFMA(VSET1(g_sin[f][i]), o[i], im_e);
        }
        for (int i = 1; i < 16; i += 2) {
            re_o = VFMA(VSET1(g_cos[f][i]), e[i], re_o);
            im_o = VFMA(VSET1(g_sin[f][i]), o[i], im_o);
        }
        const fvec base = (f & 1) ? s0m : s0p; /* s_0 + (-1)^f s_16 */
        const fvec a = VADD(base, re_e);
        const fvec r1 = VADD(a, re_o), i1 = VSUB(VZERO(), VADD(im_e, im_o));
        VSTORE(v + f * bs, r1);
        VSTORE(v + f * bs + ps, i1);
        VSTORE(v + f * bs + 2 * ps, VADD(r1, i1));
        if (f < 8) {
            const fvec r2 = VSUB(a, re_o), i2 = VSUB(im_e, im_o);
            VSTORE(v + (16 - f) * bs, r2);
            VSTORE(v + (16 - f) * bs + ps, i2);
            VSTORE(v + (16 - f) * bs + 2 * ps, VADD(r2, i2));
        }
    }
}

/* Forward DFTs of the chunk's columns in FC_W-column groups [g0, g1) for every input channel
 * into V: bins 1..15 real parts in rows c, imaginary in C + c; bin 0 holds the DC term in row c
 * and the Nyquist term in C + c. A group's 32 samples come in as FC_W rows per 32 / FC_W
 * samples (one per column, contiguous in XP) and are transposed to lanes. Lanes past the
 * chunk's columns are zeros (the GEMMs read whole tiles). */
static FC_TARGET void FC_NAME(forward)(int64_t g0, int64_t g1, void *arg)
{
    const fc_job *j = arg;
    const int64_t C = j->C, ld = j->ld, chs = j->d * j->Lp;
    for (int64_t g = g0 * FC_W; g < g1 * FC_W; g += FC_W) {
        const int64_t nl = j->ncol - g < FC_W ? (j->ncol - g > 0 ? j->ncol - g : 0) : FC_W;
        int64_t off[FC_W];
        for (int64_t l = 0; l < nl; l++) off[l] = col_xp(j, j->col0 + g + l);
        for (int64_t c = 0; c < C; c++) {
            const float *xc = j->XP + c * chs;
            fvec s[NB];
            for (int q = 0; q < NB; q += FC_W) {
                for (int l = 0; l < FC_W; l++) s[q + l] = l < nl ? VLOAD(xc + off[l] + q) : VZERO();
                FC_TR(s + q);
            }
            FC_NAME(dft32)(s, j->V + c * ld + g, C * ld, NPROD * C * ld);
        }
    }
}

/* Inverse DFTs of the chunk's columns for output channels [o0, o1) from M: block output
 * u = n - (k - 1), n in [k - 1, 32), is
 *   z[n] = Z_0 + (-1)^n Z_16 + 2 sum_{f=1..15} (Zr_f cos(2 pi f n / 32) - Zi_f sin(2 pi f n / 32))
 * (the 1/32 is in U), + bias, the activation; transposed back to one row per column and stored to
 * YP[o][res][blk m + u], u < m (phase_out adds the residual on the way to y), or with d = 1 to
 * y[blk m + u] with the residual (u < m, blk m + u < Lo). */
static FC_TARGET void FC_NAME(inverse)(int64_t o0, int64_t o1, void *arg)
{
    const fc_job *j = arg;
    const int64_t ld = j->ld, k = j->k, m = j->m, ph = j->nblk * m;
    const fvec slope = VSET1(j->slope);
    for (int64_t g = 0; g < j->ncol; g += FC_W) {
        const int64_t nl = j->ncol - g < FC_W ? j->ncol - g : FC_W;
        int64_t off[FC_W]; /* YP offset of the column's u = 0 within an output channel's d ph */
        for (int64_t l = 0; l < nl; l++) {
            const int64_t col = j->col0 + g + l;
            off[l] = col / j->nblk * ph + col % j->nblk * m;
        }
        for (int64_t o = o0; o < o1; o++) {
            fvec zr[NBIN], zi[NBIN], z[NB];
            for (int f = 0; f < NBIN; f++) { /* Zr = P0 - P1, Zi = P2 - P0 - P1 (bin 0: Z_0, Z_16) */
                const float *mf = j->M + ((int64_t)f * NPROD * j->Oq + o) * ld + g;
                const fvec p0 = VLOAD(mf), p1 = VLOAD(mf + j->Oq * ld);
                if (!f) {
                    zr[0] = p0;
                    zi[0] = p1;
                    continue;
                }
                const fvec p2 = VLOAD(mf + 2 * j->Oq * ld);
                zr[f] = VSUB(p0, p1);
                zi[f] = VSUB(p2, VADD(p0, p1));
            }
            const fvec bias = VSET1(j->b ? j->b[o] : 0.f);
            /* bins f and 16 - f share cos and sin up to (-1)^n: for even n they enter as
             * Zr_f + Zr_{16-f} and Zi_f - Zi_{16-f}, for odd n as Zr_f - Zr_{16-f} and Zi_f + Zi_{16-f} */
            fvec ae[8], be_[8], ao[8], bo[8];
            for (int f = 1; f < 8; f++) {
                ae[f] = VADD(zr[f], zr[16 - f]);
                ao[f] = VSUB(zr[f], zr[16 - f]);
                be_[f] = VSUB(zi[f], zi[16 - f]);
                bo[f] = VADD(zi[f], zi[16 - f]);
            }
            for (int64_t u = 0; u < NB; u++) {
                const int64_t n = u + k - 1;
                if (n >= NB) {
                    z[u] = VZERO();
                    continue;
                }
                const fvec *A = (n & 1) ? ao : ae, *B = (n & 1) ? bo : be_;
                fvec v = (n & 1) ? VSUB(zr[0], zi[0]) : VADD(zr[0], zi[0]);
                for (int f = 1; f < 8; f++) {
                    v = VFMA(VSET1(2.f * g_cos[f][n]), A[f], v);
                    v = VFNMA(VSET1(2.f * g_sin[f][n]), B[f], v);
                }
                v = VFMA(VSET1(2.f * g_cos[8][n]), zr[8], v);
                v = VFNMA(VSET1(2.f * g_sin[8][n]), zi[8], v);
                v = VADD(v, bias);
                z[u] = j->leaky ? VLEAKY(v, slope) : v;
            }
            for (int q = 0; q < NB; q += FC_W) FC_TR(z + q);
            /* column l's outputs u < m are z[q + l], u = q .. q + FC_W - 1; with d = 1 they are
             * y[blk m + u] itself (+ the residual), those past Lo dropped */
            const bool direct = j->d == 1;
            float *base = direct ? j->yn + o * j->Lo : j->YP + o * j->d * ph;
            const float *ro = direct && j->resn ? j->resn + o * j->Lo : NULL;
            for (int64_t l = 0; l < nl; l++) {
                const int64_t nu = direct && j->Lo - off[l] < m ? j->Lo - off[l] : m; /* outputs to store */
                for (int q = 0; q < nu; q += FC_W) {
                    float *dst = base + off[l] + q;
                    fvec v = z[q + l];
                    if (nu - q >= FC_W) {
                        if (ro) v = VADD(v, VLOAD(ro + off[l] + q));
                        VSTORE(dst, v);
                    } else {
                        const fmask mk = VMASK(nu - q);
                        if (ro) v = VADD(v, VLOADM(mk, ro + off[l] + q));
                        VSTOREM(dst, mk, v);
                    }
                }
            }
        }
    }
}

#undef FC_CAT2
#undef FC_CAT
#undef FC_NAME
#undef FC_W
#undef FC_TARGET
#undef FC_SFX
#undef fvec
#undef fmask
#undef VLOAD
#undef VSTORE
#undef VADD
#undef VSUB
#undef VFMA
#undef VFNMA
#undef VSET1
#undef VZERO
#undef VMASK
#undef VLOADM
#undef VSTOREM
#undef VLEAKY
#undef FC_TR
