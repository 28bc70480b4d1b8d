// tests/hls_library/harness.h: I/O for the C++ test programs of the finegrain HLS library.
//
// A test program runs one case, named on the command line.  It reads every input tensor as
// whitespace-separated decimal mantissas from stdin (finegrain::set_mantissa, in the order
// the case declares them) and writes every output tensor as one line of its elements' raw
// bits (unsigned decimal; the reader knows each type's signedness).  Exact at any width.
#ifndef FINEGRAIN_TEST_HARNESS_H_
#define FINEGRAIN_TEST_HARNESS_H_

#include <cstdlib>
#include <iostream>
#include <string>

#include "finegrain/common.h"
#include "finegrain/testbench.h"

namespace harness {

template <class T>
void read(T* a, int n) {
    for (int i = 0; i < n; i++) {
        std::string s;
        if (!(std::cin >> s)) {
            std::cerr << "input ended after " << i << " of " << n << " values\n";
            std::exit(2);
        }
        finegrain::set_mantissa(a[i], s);
    }
}

// The number of samples that follow (a plain decimal integer).
inline int count() {
    int n = -1;
    if (!(std::cin >> n) || n < 0) {
        std::cerr << "expected a sample count\n";
        std::exit(2);
    }
    return n;
}

// The raw W bits of a value as an unsigned decimal; the reader applies the sign.  (Not
// through finegrain::mantissa: the test programs instantiate this once per output type,
// hundreds of types in all, and this way is several times quicker to compile.)
template <class T, bool NARROW = (finegrain::fixed_traits<T>::width <= 64)>
struct raw_decimal {
    static std::string of(const T& v) { return finegrain::raw_bits(v).to_string(10, false); }
};
template <class T>
struct raw_decimal<T, true> {
    static std::string of(const T& v) {
        const int W = finegrain::fixed_traits<T>::width;
        const unsigned long long mask = W == 64 ? ~0ULL : (1ULL << (W % 64)) - 1;
        return std::to_string(static_cast<unsigned long long>(v.V.get_VAL()) & mask);
    }
};

template <class T>
void write(const T* a, int n) {
    for (int i = 0; i < n; i++) {
        std::cout << (i ? " " : "") << raw_decimal<T>::of(a[i]);
    }
    std::cout << "\n";
}

}  // namespace harness

#endif  // FINEGRAIN_TEST_HARNESS_H_
