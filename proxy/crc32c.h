// CRC-32C (Castagnoli), the checksum of spool records. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chsidecar {

uint32_t crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace chsidecar
