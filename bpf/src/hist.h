/*
 * RTT histogram bucket index, identical to bucketOf() in schemas/src/histogram.ts
 * (a test compares both). Needs __u32 from vmlinux.h or <linux/types.h>.
 */
#ifndef MESHLENS_HIST_H
#define MESHLENS_HIST_H

#define ML_HIST_SUB_BITS 4
#define ML_HIST_SUB (1u << ML_HIST_SUB_BITS)
#define ML_HIST_MAX_EXP 25
#define ML_HIST_BUCKETS (ML_HIST_SUB + (ML_HIST_MAX_EXP - ML_HIST_SUB_BITS + 1) * ML_HIST_SUB)

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Branchy binary search: loops and clz builtins are awkward for older verifiers. */
static __always_inline __u32 ml_log2(__u32 v)
{
	__u32 r = 0;

	if (v >= 1u << 16) { v >>= 16; r += 16; }
	if (v >= 1u << 8) { v >>= 8; r += 8; }
	if (v >= 1u << 4) { v >>= 4; r += 4; }
	if (v >= 1u << 2) { v >>= 2; r += 2; }
	if (v >= 1u << 1) r += 1;
	return r;
}

static __always_inline __u32 ml_hist_bucket(__u32 us)
{
	__u32 e, idx;

	if (us < ML_HIST_SUB)
		return us;
	e = ml_log2(us);
	if (e > ML_HIST_MAX_EXP)
		return ML_HIST_BUCKETS - 1;
	idx = ML_HIST_SUB + (e - ML_HIST_SUB_BITS) * ML_HIST_SUB +
	      ((us >> (e - ML_HIST_SUB_BITS)) & (ML_HIST_SUB - 1));
	/* Always true; spelled out so the verifier can bound the array index. */
	return idx < ML_HIST_BUCKETS ? idx : ML_HIST_BUCKETS - 1;
}

#endif
