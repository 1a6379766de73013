/***
* An EvoApprox-style C model written for the hwcost examples: an 8x8 unsigned multiplier
* that drops every partial-product bit of weight below 2^6 (truncation, k = 6).
* The header lines below use the EvoApprox format; the figures were computed by hwcost.
***/
// MAE% = 0.12 %
// MAE = 80
// WCE% = 0.49 %
// WCE = 321
// EP% = 93.75 %
// MRE% = 2.6 %
#include <stdint.h>
#include <stdlib.h>

uint64_t mul8u_trunc6(const uint64_t B, const uint64_t A)
{
  uint64_t sum = 0;
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++)
      if (i + j >= 6)
        sum += (((A >> i) & 1) & ((B >> j) & 1)) << (i + j);
  return sum;
}
