// The llhttp request parser, set up one way for every listener (the proxy's
// Connection and the admin port's AdminConnection).
//
// llhttp is compiled in strict mode (-DLLHTTP_STRICT_MODE=1, meson.build)
// and no lenient flag is ever set: what strict llhttp refuses is a 400. Each
// kind of owner keeps one static settings table with its callbacks; the
// parser's `data` is the owner, which a callback gets back with
// parser_owner<T>(). No I/O. Loop thread only.
#pragma once

#include <llhttp.h>

#include <string_view>

namespace chsidecar {

// A settings table with llhttp's defaults, to which the owner adds its
// callbacks; kept in a function-local static (it must outlive every parser).
inline llhttp_settings_t request_parser_settings() {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  return settings;
}

// Starts `parser` on requests. `settings` must outlive the parser; `owner`
// is what the callbacks get from parser_owner().
inline void init_request_parser(llhttp_t& parser, const llhttp_settings_t& settings, void* owner) {
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = owner;
}

template <typename Owner>
Owner* parser_owner(llhttp_t* parser) {
  return static_cast<Owner*>(parser->data);
}

// The method of the request being parsed ("GET"). REQUIRES: its request
// line was parsed (from on_headers_complete on).
inline std::string_view request_method(const llhttp_t& parser) {
  return llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
}

}  // namespace chsidecar
