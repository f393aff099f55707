// A bounds-checked cursor over ClickHouse's binary encodings: VarUInt
// (LEB128), little-endian fixed-width integers, and length-prefixed
// strings. Every read returns false instead of passing the end of the
// data. Pure; views point into the data, which must outlive the reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chsidecar {

class BinaryReader {
 public:
  explicit BinaryReader(std::string_view data) : data_(data) {}

  // ClickHouse reads at most 9 bytes of a VarUInt in old versions and 10
  // in new ones: longer (or overlong) encodings are refused here.
  bool varuint(uint64_t& value) {
    value = 0;
    for (int i = 0; i < 9; ++i) {
      if (pos_ >= data_.size()) return false;
      uint8_t byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << (7 * i);
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool u64(uint64_t& value) {
    if (left() < 8) return false;
    value = 0;
    for (int i = 7; i >= 0; --i) value = value << 8 | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += 8;
    return true;
  }
  bool u8(uint8_t& value) {
    if (left() < 1) return false;
    value = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool string(std::string_view& value) {
    uint64_t size;
    if (!varuint(size) || size > left()) return false;
    value = data_.substr(pos_, size);
    pos_ += size;
    return true;
  }
  // Skips `count` items of `width` bytes each.
  bool skip(uint64_t count, uint64_t width) {
    if (width != 0 && count > left() / width) return false;
    pos_ += count * width;
    return true;
  }
  // Unsigned little-endian integer of 1, 2, 4 or 8 bytes at offset `at`.
  uint64_t peek_le(size_t at, size_t width) const {
    uint64_t v = 0;
    for (size_t i = width; i-- > 0;) v = v << 8 | static_cast<uint8_t>(data_[at + i]);
    return v;
  }

  size_t pos() const { return pos_; }
  size_t left() const { return data_.size() - pos_; }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace chsidecar
