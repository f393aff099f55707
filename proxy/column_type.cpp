#include "column_type.h"

#include <string>

namespace chsidecar {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// Splits the text between a type's parentheses at its top-level commas;
// quoted strings (Enum names, time zones) may hold commas and parentheses.
bool split_args(std::string_view text, std::vector<std::string_view>& out) {
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'' || c == '`' || c == '"') {
      for (++i; i < text.size() && text[i] != c; ++i)
        if (text[i] == '\\') ++i;
      if (i >= text.size()) return false;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0) return false;
    } else if (c == ',' && depth == 0) {
      out.push_back(trim(text.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (depth != 0) return false;
  out.push_back(trim(text.substr(start)));
  return true;
}

bool parse_uint(std::string_view s, size_t& value) {
  if (s.empty() || s.size() > 9) return false;
  value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  return true;
}

size_t fixed_width(std::string_view name) {
  struct Width {
    std::string_view name;
    size_t width;
  };
  static constexpr Width kWidths[] = {
      {"UInt8", 1},    {"Int8", 1},     {"Bool", 1},     {"UInt16", 2},  {"Int16", 2},
      {"Date", 2},     {"UInt32", 4},   {"Int32", 4},    {"Float32", 4}, {"Date32", 4},
      {"IPv4", 4},     {"UInt64", 8},   {"Int64", 8},    {"Float64", 8}, {"UInt128", 16},
      {"Int128", 16},  {"UUID", 16},    {"IPv6", 16},    {"UInt256", 32}, {"Int256", 32},
  };
  for (const Width& w : kWidths)
    if (w.name == name) return w.width;
  return 0;
}

size_t decimal_width(size_t precision) {
  if (precision == 0 || precision > 76) return 0;
  return precision <= 9 ? 4 : precision <= 18 ? 8 : precision <= 38 ? 16 : 32;
}

// A tuple element may be named: "a UInt8", "`a b` UInt8".
std::string_view tuple_element_type(std::string_view element) {
  size_t paren = element.find('(');
  size_t space = element.find(' ');
  if (!element.empty() && element.front() == '`') {
    size_t close = element.find('`', 1);
    return close == std::string_view::npos ? std::string_view() : trim(element.substr(close + 1));
  }
  if (space != std::string_view::npos && (paren == std::string_view::npos || space < paren))
    return trim(element.substr(space + 1));
  return element;
}

bool dictionary_type(const ColumnType& t) {
  const ColumnType& inner = t.kind == ColumnType::Kind::kNullable ? t.args[0] : t;
  return inner.kind == ColumnType::Kind::kString || inner.kind == ColumnType::Kind::kFixedString ||
         inner.kind == ColumnType::Kind::kFixed;
}

bool parse(std::string_view text, ColumnType& out, int depth) {
  if (depth > 32) return false;  // ClickHouse's own nesting limits are far below
  text = trim(text);
  size_t paren = text.find('(');
  std::string_view name = text.substr(0, paren);
  std::vector<std::string_view> args;
  if (paren != std::string_view::npos) {
    if (text.back() != ')' || !split_args(text.substr(paren + 1, text.size() - paren - 2), args))
      return false;
  }
  using Kind = ColumnType::Kind;
  out = ColumnType{};
  size_t n = 0;
  auto nested = [&](size_t count) {
    if (args.size() != count) return false;
    out.args.resize(count);
    for (size_t i = 0; i < count; ++i)
      if (!parse(args[i], out.args[i], depth + 1)) return false;
    return true;
  };
  if (args.empty() && paren == std::string_view::npos) {
    if (name == "String") {
      out.kind = Kind::kString;
      return true;
    }
    if (name == "DateTime") {
      out.width = 4;
      return true;
    }
    out.width = fixed_width(name);
    return out.width != 0;
  }
  if (name == "DateTime") {  // DateTime('tz')
    out.width = 4;
    return args.size() == 1 && args[0].size() >= 2 && args[0].front() == '\'';
  }
  if (name == "DateTime64") {  // DateTime64(precision[, 'tz'])
    out.width = 8;
    return (args.size() == 1 || args.size() == 2) && parse_uint(args[0], n) && n <= 9 &&
           (args.size() == 1 || (args[1].size() >= 2 && args[1].front() == '\''));
  }
  if (name == "Decimal") {
    size_t scale = 0;
    out.width = args.size() == 2 && parse_uint(args[0], n) && parse_uint(args[1], scale) && scale <= n
                    ? decimal_width(n)
                    : 0;
    return out.width != 0;
  }
  if (name == "Decimal32" || name == "Decimal64" || name == "Decimal128" || name == "Decimal256") {
    out.width = name == "Decimal32" ? 4 : name == "Decimal64" ? 8 : name == "Decimal128" ? 16 : 32;
    return args.size() == 1 && parse_uint(args[0], n);
  }
  if (name == "Enum8" || name == "Enum16") {  // the values are ClickHouse's to check
    out.width = name == "Enum8" ? 1 : 2;
    return !args.empty() && !args[0].empty() && args[0].front() == '\'';
  }
  if (name == "FixedString") {
    out.kind = Kind::kFixedString;
    return args.size() == 1 && parse_uint(args[0], out.width) && out.width > 0;
  }
  if (name == "Nullable") {
    out.kind = Kind::kNullable;
    return nested(1);
  }
  if (name == "Array") {
    out.kind = Kind::kArray;
    return nested(1);
  }
  if (name == "Map") {
    out.kind = Kind::kMap;
    return nested(2);
  }
  if (name == "LowCardinality") {
    out.kind = Kind::kLowCardinality;
    return nested(1) && dictionary_type(out.args[0]);
  }
  if (name == "Tuple") {
    out.kind = Kind::kTuple;
    if (args.empty()) return false;
    for (std::string_view& a : args) a = tuple_element_type(a);
    return nested(args.size());
  }
  return false;
}

}  // namespace

bool parse_column_type(std::string_view text, ColumnType& out) { return parse(text, out, 0); }

}  // namespace chsidecar
