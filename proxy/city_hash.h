// CityHash128 as ClickHouse computes it: Google's CityHash v1.0.2, which
// ClickHouse froze for the checksums of its compressed blocks (later
// CityHash releases changed the function, so a current libcityhash gives
// other values). Pure; used to verify `decompress=1` request bodies.
#pragma once

#include <cstdint>
#include <string_view>

namespace chsidecar {

struct Hash128 {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const Hash128&) const = default;
};

// CityHash_v1_0_2::CityHash128 of `data`.
Hash128 city_hash128(std::string_view data);

}  // namespace chsidecar
