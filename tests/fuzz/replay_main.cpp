// Corpus replay without libFuzzer: feeds every file named on the command line
// (a directory means every regular file under it, in name order) to
// LLVMFuzzerTestOneInput once, each in its own child process, so one failing
// input does not hide the others. Built with any compiler, so CI replays the
// seed corpus and every saved crasher under its own build, and under
// ASan/UBSan when configured with -Dsanitize=true. Exits 0 when every input
// passed; else lists the inputs that failed (a failed invariant, a sanitizer
// report or a crash in the child) and exits 1.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#endif

// A saved input that makes the code allocate without bound must fail fast,
// not take the CI machine's memory: under ASan through its allocation cap,
// otherwise through an address-space limit (ASan cannot run under one).
extern "C" const char* __asan_default_options() {
  return "max_allocation_size_mb=2048:allocator_may_return_null=0";
}
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
#ifndef REPLAY_ASAN
  rlimit limit{rlim_t(4) << 30, rlim_t(4) << 30};
  setrlimit(RLIMIT_AS, &limit);
#endif
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    fs::path p(argv[i]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& entry : fs::recursive_directory_iterator(p))
        if (entry.is_regular_file()) files.push_back(entry.path());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no inputs given (usage: %s DIR_OR_FILE...)\n", argv[0]);
    return 2;
  }
  std::vector<std::string> failed;
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      // A private copy, as libFuzzer does, so reads past the end are caught.
      std::vector<uint8_t> copy(bytes.begin(), bytes.end());
      LLVMFuzzerTestOneInput(copy.data(), copy.size());
      std::fflush(nullptr);
      _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed.push_back(file.string());
  }
  std::printf("replay: %zu inputs ran, %zu failed\n", files.size(), failed.size());
  for (const std::string& f : failed) std::printf("replay: FAILED %s\n", f.c_str());
  return failed.empty() ? 0 : 1;
}
