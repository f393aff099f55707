#include "table_structure.h"

#include "batch_plan.h"

namespace chsidecar {

namespace {

// One TSV field, unescaped as ClickHouse escapes it.
bool unescape(std::string_view field, std::string& out) {
  out.clear();
  for (size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i == field.size()) return false;
    switch (field[i]) {
      case '\\': case '\'': case '"': case '`': case '/': out += field[i]; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'a': out += '\a'; break;
      case 'v': out += '\v'; break;
      case '0': out += '\0'; break;
      default: return false;
    }
  }
  return true;
}

bool default_kind(std::string_view text, TableColumn::Kind& kind) {
  using Kind = TableColumn::Kind;
  if (text.empty()) kind = Kind::kOrdinary;
  else if (text == "DEFAULT") kind = Kind::kDefault;
  else if (text == "MATERIALIZED") kind = Kind::kMaterialized;
  else if (text == "ALIAS") kind = Kind::kAlias;
  else if (text == "EPHEMERAL") kind = Kind::kEphemeral;
  else return false;
  return true;
}

// DESCRIBE's fields after default_type that it writes in every version
// (default_expression, comment, codec_expression, ttl_expression); fields
// beyond them are 0/1 flags of extra rows.
constexpr size_t kPlainFields = 7;

}  // namespace

std::string describe_sql(std::string_view table) {
  return "DESCRIBE TABLE " + std::string(table) + " FORMAT TSV";
}

bool parse_describe(std::string_view answer, TableStructure& out) {
  out = TableStructure{};
  while (!answer.empty()) {
    size_t end = answer.find('\n');
    if (end == std::string_view::npos) return false;
    std::string_view line = answer.substr(0, end);
    answer.remove_prefix(end + 1);
    std::vector<std::string_view> fields;
    for (size_t start = 0;;) {
      size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (fields.size() < 3) return false;
    bool extra = false;
    for (size_t i = kPlainFields; i < fields.size(); ++i) {
      if (fields[i] != "0" && fields[i] != "1") return false;
      extra |= fields[i] == "1";
    }
    if (extra) continue;
    TableColumn column;
    std::string kind;
    if (!unescape(fields[0], column.name) || !unescape(fields[1], column.type) ||
        !unescape(fields[2], kind) || !default_kind(kind, column.kind))
      return false;
    column.known = parse_column_type(column.type, column.parsed);
    out.columns.push_back(std::move(column));
  }
  return !out.columns.empty();
}

std::string structure_key(std::string_view table, const std::vector<QueryParam>& params,
                          const std::vector<Header>& headers) {
  std::string key(table);
  auto add = [&key](std::string_view name, std::string_view value) {
    key.push_back('\0');
    key.append(name);
    key.push_back('=');
    key.append(value);
  };
  for (std::string_view name : kUserParams)
    if (const QueryParam* p = find_param(params, name)) add(name, p->value);
  for (const char* name : kBatchKeyHeaders)
    if (const Header* h = find_header(headers, name)) add(name, h->value);
  return key;
}

bool insert_columns(const TableStructure& table, const std::vector<std::string>& listed,
                    std::vector<RowBinaryColumn>& out, std::string& signature) {
  using Kind = TableColumn::Kind;
  out.clear();
  signature.clear();
  auto take = [&](const TableColumn& c) {
    out.push_back({c.name, c.known, c.parsed});
    signature.append(c.name).push_back('\0');
    signature.append(c.type).push_back('\0');
  };
  if (listed.empty()) {
    for (const TableColumn& c : table.columns)
      if (c.kind == Kind::kOrdinary || c.kind == Kind::kDefault) take(c);
    return !out.empty();
  }
  for (size_t i = 0; i < listed.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (listed[j] == listed[i]) return false;
    const TableColumn* found = nullptr;
    for (const TableColumn& c : table.columns)
      if (c.name == listed[i]) found = &c;
    if (found == nullptr || found->kind == Kind::kMaterialized || found->kind == Kind::kAlias)
      return false;
    take(*found);
  }
  return true;
}

bool structure_error(int code) {
  switch (code) {
    case 10: case 16: case 20: case 33: case 44: case 53: case 60: case 117: case 626:
      return true;
    default:
      return false;
  }
}

}  // namespace chsidecar
