#include "city_hash.h"

#include <cstring>
#include <utility>

namespace chsidecar {

namespace {

constexpr uint64_t k0 = 0xc3a5c85c97cb3127ULL;
constexpr uint64_t k1 = 0xb492b66fbe98f273ULL;
constexpr uint64_t k2 = 0x9ae16a3b2f90404fULL;
constexpr uint64_t k3 = 0xc949d7c7509e6557ULL;
constexpr uint64_t kMul = 0x9ddfea08eb382d69ULL;

// Little-endian loads (the sidecar builds for x86-64 and arm64 Linux).
uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t rotate(uint64_t v, int shift) { return shift == 0 ? v : (v >> shift) | (v << (64 - shift)); }
uint64_t shift_mix(uint64_t v) { return v ^ (v >> 47); }

uint64_t hash_pair(uint64_t low, uint64_t high) {
  uint64_t a = (low ^ high) * kMul;
  a ^= a >> 47;
  uint64_t b = (high ^ a) * kMul;
  b ^= b >> 47;
  return b * kMul;
}

uint64_t hash_len_0_to_16(const char* s, size_t len) {
  if (len > 8) {
    uint64_t a = load64(s);
    uint64_t b = load64(s + len - 8);
    return hash_pair(a, rotate(b + len, static_cast<int>(len))) ^ b;
  }
  if (len >= 4) {
    uint64_t a = load32(s);
    return hash_pair(len + (a << 3), load32(s + len - 4));
  }
  if (len > 0) {
    uint8_t a = static_cast<uint8_t>(s[0]);
    uint8_t b = static_cast<uint8_t>(s[len >> 1]);
    uint8_t c = static_cast<uint8_t>(s[len - 1]);
    uint32_t y = static_cast<uint32_t>(a) + (static_cast<uint32_t>(b) << 8);
    uint32_t z = static_cast<uint32_t>(len) + (static_cast<uint32_t>(c) << 2);
    return shift_mix(y * k2 ^ z * k3) * k2;
  }
  return k2;
}

using Pair = std::pair<uint64_t, uint64_t>;

Pair weak_hash_32(const char* s, uint64_t a, uint64_t b) {
  uint64_t w = load64(s), x = load64(s + 8), y = load64(s + 16), z = load64(s + 24);
  a += w;
  b = rotate(b + a + z, 21);
  uint64_t c = a;
  a += x;
  a += y;
  b += rotate(a, 44);
  return {a + z, b + c};
}

// Below 128 bytes: the Murmur-like variant.
Hash128 city_murmur(const char* s, size_t len, Hash128 seed) {
  uint64_t a = seed.low, b = seed.high, c, d;
  if (len <= 16) {
    a = shift_mix(a * k1) * k1;
    c = b * k1 + hash_len_0_to_16(s, len);
    d = shift_mix(a + (len >= 8 ? load64(s) : c));
  } else {
    c = hash_pair(load64(s + len - 8) + k1, a);
    d = hash_pair(b + len, c + load64(s + len - 16));
    a += d;
    for (size_t left = len - 16;;) {
      a ^= shift_mix(load64(s) * k1) * k1;
      a *= k1;
      b ^= a;
      c ^= shift_mix(load64(s + 8) * k1) * k1;
      c *= k1;
      d ^= c;
      s += 16;
      if (left <= 16) break;
      left -= 16;
    }
  }
  a = hash_pair(a, c);
  b = hash_pair(d, b);
  return {a ^ b, hash_pair(b, a)};
}

Hash128 city_hash128_seed(const char* s, size_t len, Hash128 seed) {
  if (len < 128) return city_murmur(s, len, seed);
  Pair v, w;
  uint64_t x = seed.low, y = seed.high, z = len * k1;
  v.first = rotate(y ^ k1, 49) * k1 + load64(s);
  v.second = rotate(v.first, 42) * k1 + load64(s + 8);
  w.first = rotate(y + z, 35) * k1 + x;
  w.second = rotate(x + load64(s + 88), 53) * k1;
  auto round = [&] {
    x = rotate(x + y + v.first + load64(s + 16), 37) * k1;
    y = rotate(y + v.second + load64(s + 48), 42) * k1;
    x ^= w.second;
    y ^= v.first;
    z = rotate(z ^ w.first, 33);
    v = weak_hash_32(s, v.second * k1, x + w.first);
    w = weak_hash_32(s + 32, z + w.second, y);
    std::swap(z, x);
    s += 64;
  };
  do {
    round();
    round();
    len -= 128;
  } while (len >= 128);
  y += rotate(w.first, 37) * k0 + z;
  x += rotate(v.first + z, 49) * k0;
  // The last 1..127 bytes, in up to four 32-byte pieces from the end.
  for (size_t done = 0; done < len;) {
    done += 32;
    y = rotate(y - x, 42) * k0 + v.second;
    w.first += load64(s + len - done + 16);
    x = rotate(x, 49) * k0 + w.first;
    w.first += v.first;
    v = weak_hash_32(s + len - done, v.first, v.second);
  }
  x = hash_pair(x, v.first);
  y = hash_pair(y, w.first);
  return {hash_pair(x + v.second, w.second) + y, hash_pair(x + w.second, y + v.second)};
}

}  // namespace

Hash128 city_hash128(std::string_view data) {
  const char* s = data.data();
  size_t len = data.size();
  if (len >= 16) return city_hash128_seed(s + 16, len - 16, {load64(s) ^ k3, load64(s + 8)});
  if (len >= 8) return city_hash128_seed(nullptr, 0, {load64(s) ^ (len * k0), load64(s + len - 8) ^ k1});
  return city_hash128_seed(s, len, {k0, k1});
}

}  // namespace chsidecar
