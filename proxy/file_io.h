// The few file system calls the spool and the dead letters make durable
// writes with. Blocking: call them on the thread pool (or at start-up).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace chsidecar {

// Makes the directory's entries (a new or renamed file) durable. Returns 0
// or errno.
int sync_directory(const std::string& dir);

// pwrite of all of `data` at `offset`; 0 or errno.
int write_fully(int fd, std::string_view data, off_t offset);

}  // namespace chsidecar
