/* Exact Poisson sampler for many independent draws at once (the bulk film kernel draws one count
 * per face direction, ~4,000 per step). The scalar sampler of _streams.pxd pulls a variable number
 * of uniforms from one sequential counter, so draw d+1 cannot start before draw d has finished and
 * nothing vectorises. Here every draw owns a block of 2^MD_DRAW_BITS counters, so draws are
 * independent: they run in SIMD lanes, and a draw's value depends only on (key, base, d, lam[d]),
 * never on count, on how draws are batched into lanes, on the other means, or on the instruction set.
 *
 * Exactness: lam < 10 inverts the Poisson CDF with one uniform; lam >= 10 is Hoermann's PTRS
 * (transformed rejection with squeeze; W. Hoermann, "The transformed rejection method for generating
 * Poisson random variables", 1993), same constants as _streams.pxd. Both are exact up to double
 * rounding.
 *
 * Work goes in waves rather than in fixed groups of lanes that wait for their slowest member: all
 * draws of a method take a first pass (8 inversion steps, or one PTRS attempt), and only those still
 * open are packed into a shorter list for the next pass. Fixed groups (tried first) spend most of
 * their lanes waiting: a group of 8 runs the inversion to its largest count and PTRS to its last
 * acceptance (~2 attempts where 1.2 are needed), and the slow test on all 8 lanes whenever one
 * needs it; they measured 2-3x slower.
 *
 * Build with -ffp-contract=off (as for every lane kernel) so that the scalar, AVX2 and AVX-512
 * clones round alike: results are bit-identical across them. Pure C11, no libm calls in the lane
 * loops (md_exp and md_log of _lanes_math.h, and a square root of its own, below). No mutable
 * static state: safe in OpenMP threads. Stack: about 75 KiB (MD_PL_CHUNK = 512; 256 halves it for
 * ~10 % more time). The public function has external linkage, like the other lane kernels: include
 * this header from one translation unit. */
#ifndef MEMDRIFT_POISSON_LANES_H
#define MEMDRIFT_POISSON_LANES_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_lanes_math.h"

#define MD_DRAW_BITS 7 /* 128 uniforms reserved per draw: room for 64 PTRS attempts */

/* Lanes per block of a pass: the lane loops have this fixed length, so GCC vectorises them without
 * remainder code; lists are padded to a multiple of it (lam = 0 for the inversion, a copy for
 * PTRS), and the padding's results are discarded. 8 and 16 measured alike for AVX-512, 8 is ~7 %
 * faster for AVX2. */
#ifndef MD_PL
#define MD_PL 8
#endif

/* Draws handled per wave; the per-draw state arrays live on the stack. 512 measured ~10 % faster
 * than 256 (less fixed cost per pass) and than 1024 (the state no longer fits the L1 cache). */
#ifndef MD_PL_CHUNK
#define MD_PL_CHUNK 512
#endif

/* Inversion steps (terms of the CDF) in the first pass and in each later one. */
#ifndef MD_PL_INV_FIRST
#define MD_PL_INV_FIRST 8
#endif
#ifndef MD_PL_INV_BLOCK
#define MD_PL_INV_BLOCK 8
#endif

/* The inversion stops by k = MD_PL_INV_CAP + 1. It never gets there: for lam < 10 the partial sums
 * reach 1 to within rounding by k ~ 45 (P(K > 45 | lam = 10) < 1e-16), and from there on adding a
 * term leaves the sum unchanged, which ends the count (see md_pl_invert_steps); the cap only bounds
 * the loop whatever the input. */
#define MD_PL_INV_CAP 128 /* last entry of the 1/k table */

/* PTRS attempt t uses uniforms 2t and 2t+1 of the draw's block. */
#define MD_PL_PTRS_TRIES (1 << (MD_DRAW_BITS - 1))

#define MD_LOGFACT_TABLE_N 256

#define MD_PL_GOLDEN 0x9E3779B97F4A7C15ULL

#define MD_PL_LIST_N (MD_PL_CHUNK + MD_PL) /* room for the padding */

/* log k! for k < 256, correctly rounded (scripts/gen_poisson_tables.py). */
/* BEGIN GENERATED LOGFACT */
static const double md_logfact_table[256] = {
    0x0.0p+0, 0x0.0p+0, 0x1.62e42fefa39efp-1, 0x1.cab0bfa2a2002p+0,
    0x1.96ca77c922cf9p+1, 0x1.326643c4479c9p+2, 0x1.a51273acf01cap+2, 0x1.10ce1f32dcc30p+3,
    0x1.5358e82fcb70dp+3, 0x1.99a8921a7f7cfp+3, 0x1.e357590954d15p+3, 0x1.180973f3a8d74p+4,
    0x1.3fcba16d50143p+4, 0x1.68d5a9c3b32cep+4, 0x1.930f3df162a42p+4, 0x1.be636a63fd346p+4,
    0x1.eabff061f1a84p+4, 0x1.0c0a63f2f353ap+5, 0x1.2329df2d5ee52p+5, 0x1.3ab8153363985p+5,
    0x1.52af57aed77bep+5, 0x1.6b0a8643472a9p+5, 0x1.83c4faba84f06p+5, 0x1.9cda78b856a45p+5,
    0x1.b6472034e8d14p+5, 0x1.d007622cd65e7p+5, 0x1.ea17f717c6794p+5, 0x1.023aeb67e4fefp+6,
    0x1.0f8f18d330240p+6, 0x1.1d07353917231p+6, 0x1.2aa208b59d0e5p+6, 0x1.385e6fd9e5a40p+6,
    0x1.463b59b942084p+6, 0x1.5437c633ace4ap+6, 0x1.6252c474896bap+6, 0x1.708b719e11658p+6,
    0x1.7ee0f79b26758p+6, 0x1.8d528c1243d96p+6, 0x1.9bdf6f75257a3p+6, 0x1.aa86ec2969812p+6,
    0x1.b94855c702ba2p+6, 0x1.c8230869ca105p+6, 0x1.d7166813e12eep+6, 0x1.e621e01eeba4fp+6,
    0x1.f544e2ba69cf1p+6, 0x1.023f743addd9fp+7, 0x1.09e7b7ea41ea9p+7, 0x1.119afe762626bp+7,
    0x1.19590c853a559p+7, 0x1.2121a930c6ec3p+7, 0x1.28f49ddeb1f31p+7, 0x1.30d1b61e86335p+7,
    0x1.38b8bf8931ddbp+7, 0x1.40a989a33a6cdp+7, 0x1.48a3e5c12af19p+7, 0x1.50a7a6ee08711p+7,
    0x1.58b4a1d39da73p+7, 0x1.60caaca474746p+7, 0x1.68e99f0757979p+7, 0x1.711152043b2c4p+7,
    0x1.79419ff26dc59p+7, 0x1.817a6467f6fb9p+7, 0x1.89bb7c2a0aea1p+7, 0x1.9204c51e7c761p+7,
    0x1.9a561e3e1a4bdp+7, 0x1.a2af6787e4609p+7, 0x1.ab1081f509726p+7, 0x1.b3794f6d9d7afp+7,
    0x1.bbe9b2bdfb621p+7, 0x1.c4618f8cc56f7p+7, 0x1.cce0ca5179100p+7, 0x1.d567484b8b7b6p+7,
    0x1.ddf4ef7a05a70p+7, 0x1.e689a69396befp+7, 0x1.ef2554ff15148p+7, 0x1.f7c7e2cc66183p+7,
    0x1.00389c56e3462p+8, 0x1.04909ff8b652bp+8, 0x1.08ebf13dbf263p+8, 0x1.0d4a85602b129p+8,
    0x1.11ac51df8932ap+8, 0x1.16114c7e34736p+8, 0x1.1a796b3ede1acp+8, 0x1.1ee4a46236d3ep+8,
    0x1.2352ee64b46d5p+8, 0x1.27c43ffc72962p+8, 0x1.2c3890172d057p+8, 0x1.30afd5d851956p+8,
    0x1.352a089728f1bp+8, 0x1.39a71fdd14947p+8, 0x1.3e271363e0df7p+8, 0x1.42a9db142a36ap+8,
    0x1.472f6f03d410cp+8, 0x1.4bb7c77491066p+8, 0x1.5042dcd27af64p+8, 0x1.54d0a7b2ba658p+8,
    0x1.596120d23c4ecp+8, 0x1.5df4411475a1cp+8, 0x1.628a018233bedp+8, 0x1.67225b4879462p+8,
    0x1.6bbd47b7669b6p+8, 0x1.705ac0412d89fp+8, 0x1.74fabe790f7bep+8, 0x1.799d3c1265c0ep+8,
    0x1.7e4232dfb367dp+8, 0x1.82e99cd1c0368p+8, 0x1.879373f6bc4fep+8, 0x1.8c3fb2796c21cp+8,
    0x1.90ee52a05c35fp+8, 0x1.959f4ecd1c8b3p+8, 0x1.9a52a17b831ccp+8, 0x1.9f084540f545ep+8,
    0x1.a3c034cbb7b2cp+8, 0x1.a87a6ae24493ap+8, 0x1.ad36e262a7cc0p+8, 0x1.b1f59641e0db5p+8,
    0x1.b6b6818b4a3ebp+8, 0x1.bb799f600610ap+8, 0x1.c03eeaf66facdp+8, 0x1.c5065f9992226p+8,
    0x1.c9cff8a8a340dp+8, 0x1.ce9bb196830eap+8, 0x1.d36985e93f7b8p+8, 0x1.d83971399c213p+8,
    0x1.dd0b6f329dea4p+8, 0x1.e1df7b911a74cp+8, 0x1.e6b592234b0c9p+8, 0x1.eb8daec863182p+8,
    0x1.f067cd7029d4dp+8, 0x1.f543ea1a97428p+8, 0x1.fa2200d7741ebp+8, 0x1.ff020dc5fcd0cp+8,
    0x1.01f2068a4395cp+9, 0x1.0463fd801573cp+9, 0x1.06d6e9ea365edp+9, 0x1.094ac9f576038p+9,
    0x1.0bbf9bd589663p+9, 0x1.0e355dc4e4164p+9, 0x1.10ac0e0492828p+9, 0x1.1323aadc1563ep+9,
    0x1.159c32993e34fp+9, 0x1.1815a3900cac1p+9, 0x1.1a8ffc1a8d2fep+9, 0x1.1d0b3a98b83c1p+9,
    0x1.1f875d7052afep+9, 0x1.2204630ccefc3p+9, 0x1.248249df2f2b1p+9, 0x1.2701105de7b8dp+9,
    0x1.2980b504c3372p+9, 0x1.2c013654c6b40p+9, 0x1.2e8292d416dddp+9, 0x1.3104c90dddddep+9,
    0x1.3387d79231e3dp+9, 0x1.360bbcf5fc5bfp+9, 0x1.389077d2e1cb2p+9, 0x1.3b1606c72a4a4p+9,
    0x1.3d9c6875aa9cfp+9, 0x1.40239b85adddfp+9, 0x1.42ab9ea2dfbd1p+9, 0x1.4534707d3748fp+9,
    0x1.47be0fc8e241ep+9, 0x1.4a487b3e30effp+9, 0x1.4cd3b19982794p+9, 0x1.4f5fb19b31b3fp+9,
    0x1.51ec7a0782708p+9, 0x1.547a09a68f387p+9, 0x1.57085f44377dfp+9, 0x1.599779b00e38ep+9,
    0x1.5c2757bd48ee8p+9, 0x1.5eb7f842af200p+9, 0x1.61495a1a8a1d5p+9, 0x1.63db7c229538bp+9,
    0x1.666e5d3bee594p+9, 0x1.6901fc4b06e89p+9, 0x1.6b96583795197p+9, 0x1.6e2b6fec85852p+9,
    0x1.70c14257ed1c3p+9, 0x1.7357ce6afb697p+9, 0x1.75ef1319ed23cp+9, 0x1.78870f5bff0cdp+9,
    0x1.7b1fc22b611b3p+9, 0x1.7db92a8529ed1p+9, 0x1.805347694a819p+9, 0x1.82ee17da82373p+9,
    0x1.85899ade530d2p+9, 0x1.8825cf7cf6261p+9, 0x1.8ac2b4c15089cp+9, 0x1.8d6049b8e8253p+9,
    0x1.8ffe8d73d9061p+9, 0x1.929d7f04cad12p+9, 0x1.953d1d80e671bp+9, 0x1.97dd67ffcbffcp+9,
    0x1.9a7e5d9b88dd4p+9, 0x1.9d1ffd708e071p+9, 0x1.9fc2469da6998p+9, 0x1.a2653843ee86cp+9,
    0x1.a508d186c97e3p+9, 0x1.a7ad118bda02bp+9, 0x1.aa51f77af8af4p+9, 0x1.acf7827e2ba8fp+9,
    0x1.af9db1c19e3c7p+9, 0x1.b244847398a6bp+9, 0x1.b4ebf9c47806ep+9, 0x1.b79410e6a6799p+9,
    0x1.ba3cc90e935b7p+9, 0x1.bce62172abb2ap+9, 0x1.bf90194b52be1p+9, 0x1.c23aafd2daa98p+9,
    0x1.c4e5e4457d65ep+9, 0x1.c791b5e155a48p+9, 0x1.ca3e23e657f4cp+9, 0x1.cceb2d964c030p+9,
    0x1.cf98d234c5f8ap+9, 0x1.d24711071ffb9p+9, 0x1.d4f5e95473cd6p+9, 0x1.d7a55a6594889p+9,
    0x1.da556385087b9p+9, 0x1.dd0603ff03211p+9, 0x1.dfb73b215f34ap+9, 0x1.e269083b98e2bp+9,
    0x1.e51b6a9ec8146p+9, 0x1.e7ce619d9ad52p+9, 0x1.ea81ec8c4fd29p+9, 0x1.ed360ac0b0f5ep+9,
    0x1.efeabb920e153p+9, 0x1.f29ffe5937be4p+9, 0x1.f555d2707a179p+9, 0x1.f80c373397d9cp+9,
    0x1.fac32bffc55eep+9, 0x1.fd7ab033a3c7fp+9, 0x1.001961979e1c4p+10, 0x1.0175b229fd937p+10,
    0x1.02d2498255e0cp+10, 0x1.042f2752b9b42p+10, 0x1.058c4b4de69d1p+10, 0x1.06e9b52742dadp+10,
    0x1.08476492db365p+10, 0x1.09a5594560e57p+10, 0x1.0b0392f427775p+10, 0x1.0c62115522c95p+10,
    0x1.0dc0d41ee5056p+10, 0x1.0f1fdb089ca83p+10, 0x1.107f25ca12901p+10, 0x1.11deb41ba8145p+10,
    0x1.133e85b655240p+10, 0x1.149e9a53a66d0p+10, 0x1.15fef1adbb8aep+10, 0x1.175f8b7f453cep+10,
    0x1.18c0678383a39p+10, 0x1.1a2185764485fp+10, 0x1.1b82e513e19d0p+10, 0x1.1ce486193ee72p+10,
    0x1.1e466843c9018p+10, 0x1.1fa88b517388ep+10, 0x1.210aef00b7803p+10, 0x1.226d931091be7p+10,
};
/* END GENERATED LOGFACT */

/* 1/k, so the inversion's recurrence p_k = p_{k-1} lam / k needs no division. */
/* BEGIN GENERATED INV_K */
static const double md_inv_k_table[129] = {
    0x0p+0, 0x1.0000000000000p+0, 0x1.0000000000000p-1, 0x1.5555555555555p-2,
    0x1.0000000000000p-2, 0x1.999999999999ap-3, 0x1.5555555555555p-3, 0x1.2492492492492p-3,
    0x1.0000000000000p-3, 0x1.c71c71c71c71cp-4, 0x1.999999999999ap-4, 0x1.745d1745d1746p-4,
    0x1.5555555555555p-4, 0x1.3b13b13b13b14p-4, 0x1.2492492492492p-4, 0x1.1111111111111p-4,
    0x1.0000000000000p-4, 0x1.e1e1e1e1e1e1ep-5, 0x1.c71c71c71c71cp-5, 0x1.af286bca1af28p-5,
    0x1.999999999999ap-5, 0x1.8618618618618p-5, 0x1.745d1745d1746p-5, 0x1.642c8590b2164p-5,
    0x1.5555555555555p-5, 0x1.47ae147ae147bp-5, 0x1.3b13b13b13b14p-5, 0x1.2f684bda12f68p-5,
    0x1.2492492492492p-5, 0x1.1a7b9611a7b96p-5, 0x1.1111111111111p-5, 0x1.0842108421084p-5,
    0x1.0000000000000p-5, 0x1.f07c1f07c1f08p-6, 0x1.e1e1e1e1e1e1ep-6, 0x1.d41d41d41d41dp-6,
    0x1.c71c71c71c71cp-6, 0x1.bacf914c1bad0p-6, 0x1.af286bca1af28p-6, 0x1.a41a41a41a41ap-6,
    0x1.999999999999ap-6, 0x1.8f9c18f9c18fap-6, 0x1.8618618618618p-6, 0x1.7d05f417d05f4p-6,
    0x1.745d1745d1746p-6, 0x1.6c16c16c16c17p-6, 0x1.642c8590b2164p-6, 0x1.5c9882b931057p-6,
    0x1.5555555555555p-6, 0x1.4e5e0a72f0539p-6, 0x1.47ae147ae147bp-6, 0x1.4141414141414p-6,
    0x1.3b13b13b13b14p-6, 0x1.3521cfb2b78c1p-6, 0x1.2f684bda12f68p-6, 0x1.29e4129e4129ep-6,
    0x1.2492492492492p-6, 0x1.1f7047dc11f70p-6, 0x1.1a7b9611a7b96p-6, 0x1.15b1e5f75270dp-6,
    0x1.1111111111111p-6, 0x1.0c9714fbcda3bp-6, 0x1.0842108421084p-6, 0x1.0410410410410p-6,
    0x1.0000000000000p-6, 0x1.f81f81f81f820p-7, 0x1.f07c1f07c1f08p-7, 0x1.e9131abf0b767p-7,
    0x1.e1e1e1e1e1e1ep-7, 0x1.dae6076b981dbp-7, 0x1.d41d41d41d41dp-7, 0x1.cd85689039b0bp-7,
    0x1.c71c71c71c71cp-7, 0x1.c0e070381c0e0p-7, 0x1.bacf914c1bad0p-7, 0x1.b4e81b4e81b4fp-7,
    0x1.af286bca1af28p-7, 0x1.a98ef606a63bep-7, 0x1.a41a41a41a41ap-7, 0x1.9ec8e951033d9p-7,
    0x1.999999999999ap-7, 0x1.948b0fcd6e9e0p-7, 0x1.8f9c18f9c18fap-7, 0x1.8acb90f6bf3aap-7,
    0x1.8618618618618p-7, 0x1.8181818181818p-7, 0x1.7d05f417d05f4p-7, 0x1.78a4c8178a4c8p-7,
    0x1.745d1745d1746p-7, 0x1.702e05c0b8170p-7, 0x1.6c16c16c16c17p-7, 0x1.6816816816817p-7,
    0x1.642c8590b2164p-7, 0x1.6058160581606p-7, 0x1.5c9882b931057p-7, 0x1.58ed2308158edp-7,
    0x1.5555555555555p-7, 0x1.51d07eae2f815p-7, 0x1.4e5e0a72f0539p-7, 0x1.4afd6a052bf5bp-7,
    0x1.47ae147ae147bp-7, 0x1.446f86562d9fbp-7, 0x1.4141414141414p-7, 0x1.3e22cbce4a902p-7,
    0x1.3b13b13b13b14p-7, 0x1.3813813813814p-7, 0x1.3521cfb2b78c1p-7, 0x1.323e34a2b10bfp-7,
    0x1.2f684bda12f68p-7, 0x1.2c9fb4d812ca0p-7, 0x1.29e4129e4129ep-7, 0x1.27350b8812735p-7,
    0x1.2492492492492p-7, 0x1.21fb78121fb78p-7, 0x1.1f7047dc11f70p-7, 0x1.1cf06ada2811dp-7,
    0x1.1a7b9611a7b96p-7, 0x1.1811811811812p-7, 0x1.15b1e5f75270dp-7, 0x1.135c81135c811p-7,
    0x1.1111111111111p-7, 0x1.0ecf56be69c90p-7, 0x1.0c9714fbcda3bp-7, 0x1.0a6810a6810a7p-7,
    0x1.0842108421084p-7, 0x1.0624dd2f1a9fcp-7, 0x1.0410410410410p-7, 0x1.0204081020408p-7,
    0x1.0000000000000p-7,
};
/* END GENERATED INV_K */


/* U(key, c) of the contract, given c * golden gamma (offsets add in that product, so a lane needs
 * no multiply per counter). The 53 random bits go to double by the exponent trick instead of an
 * int64 -> double conversion, which only AVX-512DQ has (the avx512f clone and AVX2 would fall back
 * to scalar code): 2^52 + low 52 bits is a double's bit pattern; when bit 52 is clear, subtracting
 * 2^52 (exact) leaves the integer, when set the pattern already is it. So `integer` equals
 * (double)(bits >> 11) exactly and the rest rounds as the contract writes it. */
MD_INLINE double md_pl_uniform(uint64_t key, uint64_t counter_times_golden)
{
    uint64_t z = (key ^ counter_times_golden) + MD_PL_GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    uint64_t top53 = z >> 11;
    uint64_t with_2p52_bits = 0x4330000000000000ULL | (top53 & 0x000FFFFFFFFFFFFFULL);
    uint64_t offset_bits = ((top53 >> 52) - 1u) & 0x4330000000000000ULL; /* 2^52 or +0.0 */
    double with_2p52, offset;
    memcpy(&with_2p52, &with_2p52_bits, sizeof with_2p52);
    memcpy(&offset, &offset_bits, sizeof offset);
    double integer = with_2p52 - offset;
    return (integer + 0.5) * (1.0 / 9007199254740992.0);
}

/* floor without libm (SSE2 has no rounding instruction, so floor() would not vectorise in the
 * baseline build): adding and removing 2^52 rounds |x| < 2^52 to an integer (the shift takes x's
 * sign so the sum never falls into the finer-spaced binade below 2^52), then a step down if that
 * rounded up. |x| >= 2^52 is an integer already; NaN passes. */
MD_INLINE double md_pl_floor(double x)
{
    const double two52 = 4503599627370496.0;
    double shift = x < 0.0 ? -two52 : two52;
    double r = (x + shift) - shift;
    r = r > x ? r - 1.0 : r;
    return fabs(x) < two52 ? r : x;
}

/* 1 for a flag 1.0, 0 for 0.0: the top three bits of 1.0 are 001. Counting flags this way costs a
 * shift where a floating-point compare costs four instructions, in the scalar loops that build the
 * lists of open draws. */
MD_INLINE int md_pl_flag(double flag)
{
    uint64_t bits;
    memcpy(&bits, &flag, sizeof bits);
    return (int)(bits >> 61);
}

/* sqrt for normal x > 0. sqrt() does not vectorise with the project's flags: without
 * -fno-math-errno GCC guards it with a branch to libm (errno for negative arguments), and the lane
 * loop is lost. Instead: 1/sqrt(x) from the exponent-halving bit trick (3.5 % error), three Newton
 * steps without division (the error squares: 2e-3, 5e-6, 4e-11), then sqrt = x * (1/sqrt x) and one
 * Newton step for sqrt itself: within about an ulp. It only shapes PTRS's hat (b), and every build
 * computes the same bits. */
MD_INLINE double md_pl_sqrt(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits = 0x5FE6EB50C7B537A9ULL - (bits >> 1);
    double y;
    memcpy(&y, &bits, sizeof y);
    double half_x = 0.5 * x;
    y = y * (1.5 - half_x * y * y);
    y = y * (1.5 - half_x * y * y);
    y = y * (1.5 - half_x * y * y);
    double s = x * y;
    return s + (0.5 * y) * (x - s * s);
}

/* log k! by Stirling's series at x = k + 1 for k >= 256: the next term, 1/(1680 x^7), is below
 * 1e-20 relative, and md_log's error dominates (within a few ulp of lgamma, tested up to k = 1e7). */
MD_INLINE double md_pl_logfact_stirling(double k)
{
    const double half_log_2pi = 0.91893853320467274178;
    double x = k + 1.0;
    double inv_x = 1.0 / x, inv_x2 = inv_x * inv_x;
    double series = inv_x * ((1.0 / 12.0) - inv_x2 * ((1.0 / 360.0) - inv_x2 * (1.0 / 1260.0)));
    return ((x - 0.5) * md_log(x) - x) + (half_log_2pi + series);
}

/* Inversion steps j0 .. j0 + steps - 1 for one lane: p = P(K = j), F = P(K <= j), and k counts
 * the partial sums below u while F still grows. F is nondecreasing, so once u <= F_j it holds for
 * every later j; and once a term is too small to change F no later (smaller) term does either.
 * Either condition ends the count for good, so steps past the end change nothing, and the draw is
 * finished unless the last step still counted (returned: 1.0 open, 0.0 finished). The growth
 * condition settles u in the gap between the rounded total and 1 (probability ~1e-16) at the first
 * k where the tail stops mattering, instead of running on to the cap. */
MD_INLINE double md_pl_invert_steps(int j0, int steps, double lam, double u, double *p, double *F, double *k)
{
    double p_j = *p, F_j = *F, k_j = *k, counted = 0.0;
    for (int j = j0; j < j0 + steps; j++) {
        double p_next = p_j * (lam * md_inv_k_table[j]);
        double F_next = F_j + p_next;
        counted = (u > F_next) & (F_next != F_j) ? 1.0 : 0.0;
        k_j += counted;
        p_j = p_next;
        F_j = F_next;
    }
    *p = p_j;
    *F = F_j;
    *k = k_j;
    return counted;
}

/* Inversion for the n draws d_q[], means lam_q[] (0 < lam < 10), both with room for the padding.
 * Between passes the open draws are packed to the front of the state arrays, so every lane loop
 * reads and writes consecutive elements: GCC's generic tuning emits no gather instructions, and a
 * lane loop with an indexed load is not vectorised at all. Flags are doubles and the packing is a
 * separate scalar loop, because 64-bit integer masks and reductions in a lane loop stop SSE2 (the
 * baseline clone) from vectorising it. Packing in place is safe: an entry only moves down. */
MD_INLINE void md_pl_invert_list(int64_t *d_q, double *lam_q, int n, uint64_t key, uint64_t base_times_golden,
                                 double *k_out)
{
    double u_q[MD_PL_LIST_N], p_q[MD_PL_LIST_N], F_q[MD_PL_LIST_N], k_q[MD_PL_LIST_N], open_q[MD_PL_LIST_N];
    int open_at[MD_PL_LIST_N];
    for (int l = 0; l < MD_PL; l++) { /* padding lanes: lam = 0 draws k = 0 at once */
        d_q[n + l] = d_q[0];
        lam_q[n + l] = 0.0;
    }
    for (int q0 = 0; q0 < n; q0 += MD_PL) {
        for (int l = 0; l < MD_PL; l++) {
            int q = q0 + l;
            double lam = lam_q[q];
            double u = md_pl_uniform(key, base_times_golden + (uint64_t)d_q[q] * (MD_PL_GOLDEN << MD_DRAW_BITS));
            double p = md_exp(-lam), F = p, k = u > F ? 1.0 : 0.0;
            double open = md_pl_invert_steps(1, MD_PL_INV_FIRST, lam, u, &p, &F, &k);
            u_q[q] = u;
            p_q[q] = p;
            F_q[q] = F;
            k_q[q] = k;
            open_q[q] = open;
        }
    }
    /* entries n .. n + MD_PL - 1 are initialised from here on, so later passes need no padding */
    for (int j0 = 1 + MD_PL_INV_FIRST;; j0 += MD_PL_INV_BLOCK) {
        int n_open = 0;
        for (int q = 0; q < n; q++) {
            k_out[d_q[q]] = k_q[q]; /* final unless the draw is still open */
            open_at[n_open] = q;
            n_open += md_pl_flag(open_q[q]);
        }
        if (n_open == 0 || j0 + MD_PL_INV_BLOCK - 1 > MD_PL_INV_CAP)
            break;
        for (int r = 0; r < n_open; r++) {
            int q = open_at[r];
            d_q[r] = d_q[q];
            lam_q[r] = lam_q[q];
            u_q[r] = u_q[q];
            p_q[r] = p_q[q];
            F_q[r] = F_q[q];
            k_q[r] = k_q[q];
        }
        n = n_open;
        for (int q0 = 0; q0 < n; q0 += MD_PL) {
            for (int l = 0; l < MD_PL; l++) {
                int q = q0 + l;
                double p = p_q[q], F = F_q[q], k = k_q[q];
                open_q[q] = md_pl_invert_steps(j0, MD_PL_INV_BLOCK, lam_q[q], u_q[q], &p, &F, &k);
                p_q[q] = p;
                F_q[q] = F;
                k_q[q] = k;
            }
        }
    }
}

/* PTRS's hat constants a and b for mean lam: cheap enough to recompute wherever they are needed
 * instead of carrying them through the lists. */
MD_INLINE void md_pl_ptrs_shape(double lam, double *a, double *b)
{
    double bb = 0.931 + 2.53 * md_pl_sqrt(lam);
    *b = bb;
    *a = -0.059 + 0.02483 * bb;
}

/* PTRS for the n draws d_q[], means lam_q[] (10 <= lam < inf), both with room for the padding.
 * Attempt t of every open draw runs in one lane loop; the slow cases (62 % of attempts at lam = 10,
 * 32 % at 80, 18 % for large lam: the squeeze v <= vr is narrow for small lam) are copied out for
 * the slow test, and the rejected ones and the slow test's failures are packed in place for attempt
 * t + 1 (layout as in md_pl_invert_list). Only (d, lam) travel with a draw.
 * The slow test log(v invalpha / (a/us^2 + b)) <= -lam + k log lam - log k! is evaluated as
 * v <= (a/us^2 + b) / invalpha * exp(-lam + k log lam - log k!): one md_exp instead of three of the
 * four logs of _streams.pxd (md_exp costs 60 % of md_log), and with the denominators multiplied
 * out (divisions are the slowest vector instructions); equal up to rounding (in the slow test
 * us >= 2^-54 unless v <= us, so us^2 is far from underflow; exp flushing below 2^-1022 to 0
 * rejects where the acceptance probability is below 1e-300). The squeeze is multiplied out alike.
 * Stirling runs only when some slow case has k >= 256, which changes no value, only the work.
 * After MD_PL_PTRS_TRIES rejections the draw returns floor(lam) rather than read past its block of
 * uniforms. An attempt accepts with probability 0.75 at lam = 10, rising to 0.85 at 80 and 0.89 for
 * large lam, so with 64 attempts that happens with probability 0.25^64 ~ 3e-39 per draw at worst
 * (lam = 10). (32 attempts, 2^6 counters a draw, would leave 5e-20: at 4e8 draws a second, all at
 * lam = 10, once in 1,600 years; the counters cost nothing, the 64-bit counter space is what
 * they use up, and at 2^7 per draw it lasts for 2^57 draws.) */
MD_INLINE void md_pl_ptrs_list(int64_t *d_q, double *lam_q, int n, uint64_t key, uint64_t base_times_golden,
                               double *k_out)
{
    double k_q[MD_PL_LIST_N], us_q[MD_PL_LIST_N], v_q[MD_PL_LIST_N], slow_q[MD_PL_LIST_N], reject_q[MD_PL_LIST_N];
    int slow_at[MD_PL_LIST_N], reject_at[MD_PL_LIST_N];
    int64_t s_d[MD_PL_LIST_N];
    double s_lam[MD_PL_LIST_N], s_us[MD_PL_LIST_N], s_v[MD_PL_LIST_N], s_k[MD_PL_LIST_N];
    double s_log_fact[MD_PL_LIST_N], s_fail[MD_PL_LIST_N];
    for (int l = 0; l < MD_PL; l++) { /* padding lanes: any mean PTRS takes; results discarded */
        d_q[n + l] = d_q[0];
        lam_q[n + l] = 10.0;
    }
    /* entries n .. n + MD_PL - 1 stay initialised, so later attempts need no padding */
    for (int t = 0;;) {
        for (int q0 = 0; q0 < n; q0 += MD_PL) {
            for (int l = 0; l < MD_PL; l++) {
                int q = q0 + l;
                double lam = lam_q[q], a, b;
                md_pl_ptrs_shape(lam, &a, &b);
                uint64_t cg = base_times_golden + (uint64_t)d_q[q] * (MD_PL_GOLDEN << MD_DRAW_BITS);
                double u = md_pl_uniform(key, cg + (uint64_t)(2 * t) * MD_PL_GOLDEN) - 0.5;
                double v = md_pl_uniform(key, cg + (uint64_t)(2 * t + 1) * MD_PL_GOLDEN);
                double us = 0.5 - fabs(u);
                double k = md_pl_floor((2.0 * a / us + b) * u + lam + 0.43);
                /* the squeeze v <= vr, vr = 0.9277 - 3.6224/(b - 2), times b - 2 > 0: no division */
                int accept = (us >= 0.07) & (v * (b - 2.0) <= 0.9277 * (b - 2.0) - 3.6224);
                int reject = (k < 0.0) | ((us < 0.013) & (v > us));
                k_q[q] = k;
                us_q[q] = us;
                v_q[q] = v;
                slow_q[q] = accept | reject ? 0.0 : 1.0;
                reject_q[q] = reject & !accept ? 1.0 : 0.0;
            }
        }
        int n_slow = 0, n_open = 0;
        for (int q = 0; q < n; q++) {
            k_out[d_q[q]] = k_q[q]; /* final unless the draw is still open */
            slow_at[n_slow] = q;
            n_slow += md_pl_flag(slow_q[q]);
            reject_at[n_open] = q;
            n_open += md_pl_flag(reject_q[q]);
        }
        int any_big = 0;
        for (int s = 0; s < n_slow + (n_slow > 0 ? MD_PL : 0); s++) { /* padding: copies of the first */
            int q = slow_at[s < n_slow ? s : 0];
            double k = k_q[q];
            int in_table = (k >= 0.0) & (k < (double)MD_LOGFACT_TABLE_N);
            s_d[s] = d_q[q];
            s_lam[s] = lam_q[q];
            s_us[s] = us_q[q];
            s_v[s] = v_q[q];
            s_k[s] = k;
            /* the table lookup is an indexed load: kept out of the lane loops (see md_pl_invert_list) */
            s_log_fact[s] = md_logfact_table[(int)(in_table ? k : 0.0)];
            any_big |= !in_table;
        }
        for (int r = 0; r < n_open; r++) {
            int q = reject_at[r];
            d_q[r] = d_q[q];
            lam_q[r] = lam_q[q];
        }
        if (n_slow > 0) {
            if (any_big) {
                for (int s0 = 0; s0 < n_slow; s0 += MD_PL) {
                    for (int l = 0; l < MD_PL; l++) {
                        int s = s0 + l;
                        int in_table = s_k[s] < (double)MD_LOGFACT_TABLE_N;
                        double stirling = md_pl_logfact_stirling(in_table ? (double)MD_LOGFACT_TABLE_N : s_k[s]);
                        s_log_fact[s] = in_table ? s_log_fact[s] : stirling;
                    }
                }
            }
            for (int s0 = 0; s0 < n_slow; s0 += MD_PL) {
                for (int l = 0; l < MD_PL; l++) {
                    int s = s0 + l;
                    double lam = s_lam[s], a, b, us2 = s_us[s] * s_us[s];
                    md_pl_ptrs_shape(lam, &a, &b);
                    double pmf = md_exp(-lam + s_k[s] * md_log(lam) - s_log_fact[s]);
                    /* v <= (a/us^2 + b) / invalpha * pmf, invalpha = 1.1239 + 1.1328/(b - 3.4), times
                     * the positive us^2 (1.1239 (b - 3.4) + 1.1328) / (b - 3.4): no division */
                    double lhs = s_v[s] * (us2 * (1.1239 * (b - 3.4) + 1.1328));
                    s_fail[s] = lhs <= ((a + b * us2) * (b - 3.4)) * pmf ? 0.0 : 1.0;
                }
            }
            for (int s = 0; s < n_slow; s++) {
                d_q[n_open] = s_d[s];
                lam_q[n_open] = s_lam[s];
                n_open += md_pl_flag(s_fail[s]);
            }
        }
        n = n_open;
        if (n == 0 || ++t == MD_PL_PTRS_TRIES)
            break;
    }
    for (int q = 0; q < n; q++) /* all tries rejected */
        k_out[d_q[q]] = md_pl_floor(lam_q[q]);
}

/* k_out[d] ~ Poisson(lam[d]) for d < count. Draw d uses only the uniforms
 * U(key, base + ((uint64_t)d << MD_DRAW_BITS) + j), j < 2^MD_DRAW_BITS, where
 * U(key, c) = ((double)(splitmix64(key ^ (c * 0x9E3779B97F4A7C15)) >> 11) + 0.5) * 2^-53;
 * the caller advances its counter by (uint64_t)count << MD_DRAW_BITS afterwards.
 * lam <= 0 gives 0; NaN or +inf gives NaN.
 * Draws are sorted into an inversion and a PTRS list first, so no lane computes both methods. The
 * sort reads lam's bits as an unsigned integer: non-negative doubles are ordered like their bit
 * patterns, with +inf and then NaN above every number, and everything negative (sign bit set) lies
 * above those, so one unsigned compare tests a range. Means that are no numbers go to the inversion
 * as 0 and are overwritten after it (a branch never taken in practice). */
/* The uniforms' 64-bit multiplies want AVX-512DQ: the AVX-512 clone is x86-64-v4's (MD_CLONES_DQ). */
MD_CLONES_DQ void md_poisson_lanes(const double *lam, double *k_out, int count, uint64_t key, uint64_t base)
{
    const uint64_t bits_10 = 0x4024000000000000ULL, bits_inf = 0x7FF0000000000000ULL;
    const uint64_t base_times_golden = base * MD_PL_GOLDEN;
    for (int start = 0; start < count; start += MD_PL_CHUNK) {
        int end = count - start < MD_PL_CHUNK ? count : start + MD_PL_CHUNK;
        int64_t small_d[MD_PL_LIST_N], large_d[MD_PL_LIST_N]; /* 64-bit like the lanes they feed */
        double small_lam[MD_PL_LIST_N], large_lam[MD_PL_LIST_N];
        int special_d[MD_PL_CHUNK];
        int n_small = 0, n_large = 0, n_special = 0;
        for (int d = start; d < end; d++) {
            double x = lam[d];
            uint64_t bits;
            memcpy(&bits, &x, sizeof bits);
            int large = bits - bits_10 < bits_inf - bits_10;  /* 10 <= x < inf */
            int positive = bits - 1u < bits_10 - 1u;         /* 0 < x < 10 */
            int64_t *to_d = large ? &large_d[n_large] : &small_d[n_small];
            double *to_lam = large ? &large_lam[n_large] : &small_lam[n_small];
            *to_d = d;
            *to_lam = large | positive ? x : 0.0; /* lam <= 0, NaN and +inf draw 0 */
            n_large += large;
            n_small += !large;
            if ((bits & 0x7FFFFFFFFFFFFFFFULL) > bits_inf || bits == bits_inf)
                special_d[n_special++] = d;
        }
        if (n_small > 0)
            md_pl_invert_list(small_d, small_lam, n_small, key, base_times_golden, k_out);
        if (n_large > 0)
            md_pl_ptrs_list(large_d, large_lam, n_large, key, base_times_golden, k_out);
        for (int i = 0; i < n_special; i++)
            k_out[special_d[i]] = NAN;
    }
}

#endif
