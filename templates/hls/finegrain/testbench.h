// finegrain testbench helpers: move values in and out of ap_fixed containers as their
// integer mantissas, written in decimal.  The emulator writes tb_data/*.txt this way, so
// the comparison is on every bit, never on a rounded decimal.
#ifndef FINEGRAIN_TESTBENCH_H_
#define FINEGRAIN_TESTBENCH_H_

#include <string>

#include "ap_fixed.h"

namespace finegrain {

// Set `value`'s bits from its mantissa in decimal ("-12" for -12 LSBs).
template <class T>
void set_mantissa(T &value, const std::string &digits) {
  ap_int<T::width> raw(digits.c_str(), 10);
  value.range() = raw.range();
}

// The mantissa of `value` in decimal, with the sign its type gives it.
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
std::string mantissa_string(const ap_fixed<W, I, Q, O, N> &value) {
  ap_int<W> raw;
  raw.range() = value.range();
  return raw.to_string(10);
}

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
std::string mantissa_string(const ap_ufixed<W, I, Q, O, N> &value) {
  ap_uint<W> raw;
  raw.range() = value.range();
  return raw.to_string(10);
}

}  // namespace finegrain

#endif
