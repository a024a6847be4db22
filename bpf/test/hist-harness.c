/* Runs the kernel's bucket function in user space: first line ML_HIST_BUCKETS, then one
 * bucket index per input value (decimal, one per line). */
#include <linux/types.h>
#include <stdio.h>
#include "../src/hist.h"

int main(void)
{
	unsigned long long v;

	printf("%u\n", (unsigned)ML_HIST_BUCKETS);
	while (scanf("%llu", &v) == 1)
		printf("%u\n", ml_hist_bucket((__u32)v));
	return 0;
}
