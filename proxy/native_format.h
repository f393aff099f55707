// Walking a body in ClickHouse's Native format, byte for byte.
//
// A Native body (as an INSERT sends it over HTTP: no block info, no
// serialization-info flags; both 18.16 and 26.7 write and read it so) is a
// sequence of blocks. Each block: VarUInt column count, VarUInt row count,
// then per column its name (String), its type (String) and, when the block
// has rows, the column's data in the type's bulk serialization: fixed-width
// values; strings as VarUInt length and bytes; Nullable as a null map then
// the values; Array as UInt64 end offsets then the nested column; Tuple as
// its elements one after the other; Map as Array(Tuple(K, V));
// LowCardinality as a UInt64 key version (1) written with the column's
// other prefixes before any data, then chunks of: UInt64 index type with
// flags, UInt64 count and the dictionary keys, UInt64 count and the
// indexes. Several blocks of one structure may follow each other, so the
// bodies of several requests concatenate into one INSERT.
//
// walk_native() accepts a body only when it reads every byte exactly as
// ClickHouse will: every type known (column_type.h), every length within
// the data, every block with the first block's names and types, array
// offsets that never go back, LowCardinality chunks of the shape the
// servers write (additional keys, no global dictionary, indexes within
// the keys; a LowCardinality column of no rows inside an Array is
// refused: 18.16 writes a chunk for it, newer servers write nothing).
// Anything else is an error naming what is wrong; the request then goes to
// ClickHouse alone and gets its own answer.
//
// merge_native_blocks() makes one block of the blocks of a batch (bodies
// walk_native() accepted, of one structure), so that ClickHouse reads one
// block instead of one per request (a single-row block costs it about ten
// times a row's work). Only columns whose bulk data concatenates are
// merged: fixed-width values, String, FixedString, and Nullable of those
// (null maps, then values). Arrays, Maps, Tuples and LowCardinality keep
// their blocks. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chsidecar {

struct NativeBody {
  // The first block's names and types, "name\0type\0" per column: every
  // block of a batch must have these (part of the merge key).
  std::string structure;
  size_t column_count = 0;
  size_t row_count = 0;  // over all blocks
  size_t block_count = 0;
};

struct NativeError {
  size_t block = 0;  // 1-based
  std::string message;
};

bool walk_native(std::string_view data, NativeBody& body, NativeError& error);

// One block with every row of `blocks` in order, into `out`; false (and
// `out` untouched) when a column's type is not merged or the data does not
// walk. The same input always gives the same bytes.
bool merge_native_blocks(std::string_view blocks, std::string& out);

}  // namespace chsidecar
