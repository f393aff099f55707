// Compressing the bodies of merged batches for the upstream.
//
// A batch is sent with Content-Encoding `gzip` (zlib level 1), `lz4` (an
// LZ4 frame, default speed) or `zstd` (level 1), or plain. The output is a
// function of the input bytes and the coding alone, so a batch replayed
// from the spool goes out as the same bytes. Pure; zlib, liblz4, libzstd.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace chsidecar {

enum class UpstreamCoding { kNone, kGzip, kLz4, kZstd };

// The Content-Encoding value of `coding` ("" for kNone).
std::string_view coding_name(UpstreamCoding coding);

// The coding for --upstream-compression `setting`, given whether the server
// decodes lz4 and zstd bodies (ServerFacts::modern_encodings) and whether
// every upstream URL is on loopback. auto: zstd when the server has it and
// an upstream is across a network; none on loopback, where compressing
// costs more CPU than the bytes it saves, and none on a server with only
// gzip, which costs 4x zstd's CPU per MB (bench/codec_cost, README).
// lz4 or zstd asked of a server without them: none (it would refuse them).
UpstreamCoding choose_upstream_coding(UpstreamCompression setting, bool server_has_lz4_zstd,
                                      bool upstreams_on_loopback);

// Whether choose_upstream_coding()'s answer depends on the server at all
// (false for none, gzip, and auto on loopback): then it is known at start.
bool choose_upstream_coding_needs_server(UpstreamCompression setting, bool upstreams_on_loopback);

// True if every URL's host is 127.x.x.x, ::1 or localhost.
bool all_on_loopback(const std::vector<std::string>& urls);

// Compresses `in` into `out`. False (and `out` empty) only if the library
// fails; then the batch goes plain.
bool encode_body(UpstreamCoding coding, std::string_view in, std::string& out);

}  // namespace chsidecar
