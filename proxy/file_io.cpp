#include "file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace chsidecar {

int sync_directory(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  int err = ::fsync(dfd) != 0 ? errno : 0;
  ::close(dfd);
  return err;
}

int write_fully(int fd, std::string_view data, off_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return 0;
}

}  // namespace chsidecar
