// chsidecar: arguments → Config → App → uv_run → exit code.
#include <curl/curl.h>
#include <uv.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "admin.h"
#include "app.h"
#include "config.h"
#include "log.h"

using namespace chsidecar;

int main(int argc, char** argv) {
  // Large buffers (bodies, batches) come from mmap and go back to the system
  // when freed: with glibc's default, the threshold rises after the first
  // free, later ones come from the heap, and its holes keep RSS far above
  // what --max-memory counts. A fixed threshold also ends that adjustment.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  std::vector<std::string> args(argv + 1, argv + argc);
  Config config;
  ConfigResult parsed = parse_config(args, [](const char* name) { return std::getenv(name); }, config);
  switch (parsed.action) {
    case ConfigAction::kHelp:
      std::fputs(config_help().c_str(), stdout);
      return 0;
    case ConfigAction::kVersion:
      std::printf("chsidecar %s (libuv %s, %s)\n", CHSIDECAR_VERSION, uv_version_string(),
                  curl_version());
      return 0;
    case ConfigAction::kError:
      std::fprintf(stderr, "chsidecar: %s\n", parsed.error.c_str());
      return 2;
    case ConfigAction::kCheck:
      std::printf("chsidecar: configuration ok (upstream %s, listen %s:%d, admin %s)\n",
                  shown_upstreams(config).c_str(), config.listen.host.c_str(),
                  config.listen.port,
                  config.admin_enabled
                      ? (config.admin_listen.host + ":" + std::to_string(config.admin_listen.port)).c_str()
                      : "off");
      return 0;
    case ConfigAction::kRun:
      break;
  }
  log_setup(config.log_level, config.log_format);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    log_event(LogLevel::kError, "curl_init_failed");
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc;
  {
    App app(&loop, config);
    std::string spool_error;
    if (!app.open_spool(spool_error)) {
      log_event(LogLevel::kError, "spool_unusable", {{"error", spool_error}});
      rc = UV_EINVAL;
    } else if ((rc = app.start()) != 0) {
      log_event(LogLevel::kError, "listen_failed",
                {{"listen", config.listen.host + ":" + std::to_string(config.listen.port)},
                 {"error", uv_strerror(rc)}});
    } else {
      // Every effective setting, so that a log shows what the process ran with.
      std::vector<std::pair<std::string, std::string>> settings = config_summary(config);
      std::vector<LogField> fields{{"version", CHSIDECAR_VERSION}};
      for (const auto& [name, value] : settings) {
        if (name == "admin_listen") {
          fields.emplace_back("admin", app.admin() ? config.admin_listen.host + ":" +
                                                         std::to_string(app.admin()->port())
                                                   : std::string("off"));
        } else {
          fields.emplace_back(name, value);
        }
      }
      log_event(LogLevel::kInfo, "started", fields);
    }
    if (rc == 0) uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of what App released
  uv_loop_close(&loop);
  curl_global_cleanup();
  return rc == 0 ? 0 : 1;
}
