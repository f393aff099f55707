// The llhttp request parser, set up one way for every listener (the proxy's
// Connection and the admin port's AdminConnection).
//
// llhttp is compiled in strict mode (-DLLHTTP_STRICT_MODE=1, meson.build)
// and no lenient flag is ever set: what strict llhttp refuses is a 400. Each
// kind of owner has one static settings table, made from the callbacks it
// declares; the parser's `data` is the owner, which a callback gets back
// with parser_owner<T>(). No I/O. Loop thread only.
#pragma once

#include <llhttp.h>

#include <string_view>

namespace chsidecar {

// The settings table of every parser owned by an `Owner`: llhttp's
// defaults plus each callback Owner declares, as a static noexcept member
// of llhttp's signature (on_message_begin, on_url, on_header_field,
// on_header_value, on_headers_complete, on_body, on_message_complete).
// Built once per type. An Owner whose callbacks are private befriends
// ParserSettings<Owner>.
template <typename Owner>
struct ParserSettings {
  static const llhttp_settings_t& get() {
    static_assert(requires { &Owner::on_message_complete; },
                  "every owner handles the end of a request; one with private callbacks "
                  "befriends ParserSettings<Owner>");
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      if constexpr (requires { &Owner::on_message_begin; }) s.on_message_begin = &Owner::on_message_begin;
      if constexpr (requires { &Owner::on_url; }) s.on_url = &Owner::on_url;
      if constexpr (requires { &Owner::on_header_field; }) s.on_header_field = &Owner::on_header_field;
      if constexpr (requires { &Owner::on_header_value; }) s.on_header_value = &Owner::on_header_value;
      if constexpr (requires { &Owner::on_headers_complete; })
        s.on_headers_complete = &Owner::on_headers_complete;
      if constexpr (requires { &Owner::on_body; }) s.on_body = &Owner::on_body;
      if constexpr (requires { &Owner::on_message_complete; })
        s.on_message_complete = &Owner::on_message_complete;
      return s;
    }();
    return settings;
  }
};

// Starts `parser` on requests for `owner`, which its callbacks get back
// with parser_owner<Owner>().
template <typename Owner>
void init_request_parser(llhttp_t& parser, Owner* owner) {
  llhttp_init(&parser, HTTP_REQUEST, &ParserSettings<Owner>::get());
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
