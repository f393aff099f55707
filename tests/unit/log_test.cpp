// Unit tests for log.h: credentials never reach a log line through a URL.
#include <doctest/doctest.h>

#include <string>

#include "log.h"

using namespace chsidecar;

TEST_CASE("redact_url strips user:password@") {
  CHECK(redact_url("http://alice:secret@127.0.0.1:8123") == "http://127.0.0.1:8123");
  CHECK(redact_url("https://alice:secret@ch.example:8443/") == "https://ch.example:8443/");
  CHECK(redact_url("http://alice@h:8123/path") == "http://h:8123/path");
  CHECK(redact_url("http://:pw@h") == "http://h");
  // A password with '@' in it: everything up to the last '@' of the authority.
  CHECK(redact_url("http://alice:p@ss@h:8123/x") == "http://h:8123/x");
  // Without a scheme.
  CHECK(redact_url("alice:secret@h:8123") == "h:8123");
}

TEST_CASE("redact_url leaves URLs without credentials alone") {
  CHECK(redact_url("") == "");
  CHECK(redact_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123");
  CHECK(redact_url("http://h:8123/") == "http://h:8123/");
  // An '@' after the authority is not a credential.
  CHECK(redact_url("http://h:8123/a@b") == "http://h:8123/a@b");
  CHECK(redact_url("http://h:8123/?user=a@b") == "http://h:8123/?user=a@b");
  CHECK(redact_url("http://h:8123?user=a@b") == "http://h:8123?user=a@b");
  CHECK(redact_url("http://h:8123#a@b") == "http://h:8123#a@b");
}

TEST_CASE("redact_url output never contains the password") {
  for (const char* url : {"http://u:hunter2@h", "https://u:hunter2@h:1/p?q=1",
                          "http://u:hunter2@h?x=1", "http://u:hunter2@h#f"}) {
    CAPTURE(url);
    CHECK(redact_url(url).find("hunter2") == std::string::npos);
  }
}

TEST_CASE("log_enabled follows the level set up") {
  log_setup(LogLevel::kWarn, LogFormat::kText);
  CHECK_FALSE(log_enabled(LogLevel::kDebug));
  CHECK_FALSE(log_enabled(LogLevel::kInfo));
  CHECK(log_enabled(LogLevel::kWarn));
  CHECK(log_enabled(LogLevel::kError));
  log_setup(LogLevel::kDebug, LogFormat::kText);
  CHECK(log_enabled(LogLevel::kDebug));
  log_setup(LogLevel::kInfo, LogFormat::kText);  // back to the default
  CHECK_FALSE(log_enabled(LogLevel::kDebug));
  CHECK(log_enabled(LogLevel::kInfo));
}
