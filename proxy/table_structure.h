// A table's columns as DESCRIBE TABLE tells them, and the columns an
// INSERT writes, for RowBinary INSERTs.
//
// RowBinary, RowBinaryWithNames and RowBinaryWithDefaults carry no types,
// so the walker (row_binary.h) needs the table's: the sidecar asks
// `DESCRIBE TABLE <table as the INSERT wrote it> FORMAT TSV` as the
// INSERT's own user (structure_cache.h) and keeps the answer per key: the
// table as written plus every credential and the database (user,
// password, quota_key and database parameters, the credential headers).
// So a user never gets an answer asked as another, and `t` in one
// database is never taken for `t` in another. Here: the question, the
// reading of the answer, the key, the mapping of an INSERT's columns to
// types, and which errors say the known columns are stale. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "column_type.h"
#include "request.h"
#include "row_binary.h"

namespace chsidecar {

struct TableColumn {
  // DESCRIBE's default_type: '' (kOrdinary), DEFAULT, MATERIALIZED, ALIAS, EPHEMERAL.
  enum class Kind { kOrdinary, kDefault, kMaterialized, kAlias, kEphemeral };
  std::string name;
  std::string type;  // as DESCRIBE writes it
  Kind kind = Kind::kOrdinary;
  bool known = false;  // the walker reads `type` (then parsed holds it)
  ColumnType parsed;
};

struct TableStructure {
  std::vector<TableColumn> columns;  // in the table's order
};

// The question for a table as an INSERT names it (db.t, `a b`, t).
std::string describe_sql(std::string_view table);

// Reads DESCRIBE's TSV answer (name, type, default_type, then fields this
// reader skips; 18.16 writes 5 fields, 26.7 7). Rows with a further 0/1
// field set to 1 (subcolumns, virtual columns: settings of the user's
// profile) are not columns an INSERT writes and are left out. False for
// anything else: another default_type, an escape it does not know, no rows.
bool parse_describe(std::string_view answer, TableStructure& out);

// The cache key: the table as written, the credentials and the database.
std::string structure_key(std::string_view table, const std::vector<QueryParam>& params,
                          const std::vector<Header>& headers);

// The columns an INSERT writes and their types, as ClickHouse picks them:
// its column list (`listed`, names unquoted: ordinary, DEFAULT or
// EPHEMERAL columns, each once), or with no list the ordinary and DEFAULT
// columns in order (MATERIALIZED, ALIAS and EPHEMERAL are not written;
// measured on 18.16 and 26.7). False when ClickHouse would refuse the list
// (a name not in the table, MATERIALIZED or ALIAS, twice): such a request
// goes alone. `signature` ("name\0type\0" per column) goes into the merge key.
bool insert_columns(const TableStructure& table, const std::vector<std::string>& listed,
                    std::vector<RowBinaryColumn>& out, std::string& signature);

// ClickHouse's codes for a batch whose rows do not fit the table's
// structure as the sidecar knew it: 10 NOT_FOUND_COLUMN_IN_BLOCK, 16
// NO_SUCH_COLUMN_IN_TABLE, 20 NUMBER_OF_COLUMNS_DOESNT_MATCH, 33
// CANNOT_READ_ALL_DATA, 44 ILLEGAL_COLUMN (a column made MATERIALIZED), 53
// TYPE_MISMATCH, 60 UNKNOWN_TABLE, 117 INCORRECT_DATA, 626
// CANNOT_SKIP_UNKNOWN_FIELD. The key's structure is asked again.
bool structure_error(int code);

// Where to ask about a key: as the INSERT that needed it.
struct StructureSource {
  std::string key;              // structure_key()
  std::string table;            // as the INSERT wrote it
  std::string target;           // the INSERT's path and query string (credentials from it)
  std::vector<Header> headers;  // its credential headers
};

}  // namespace chsidecar
