// Compressing the bodies of merged batches for the upstream.
//
// A batch is sent with Content-Encoding `gzip` (zlib level 1), `lz4` (an
// LZ4 frame, default speed) or `zstd` (level 1), or plain. The output is a
// function of the input bytes and the coding alone, so a batch replayed
// from the spool goes out as the same bytes. Pure; zlib, liblz4, libzstd.
#pragma once

#include <string>
#include <string_view>

namespace chsidecar {

enum class UpstreamCoding { kNone, kGzip, kLz4, kZstd };

// The Content-Encoding value of `coding` ("" for kNone).
std::string_view coding_name(UpstreamCoding coding);

// Compresses `in` into `out`. False (and `out` empty) only if the library
// fails; then the batch goes plain.
bool encode_body(UpstreamCoding coding, std::string_view in, std::string& out);

}  // namespace chsidecar
