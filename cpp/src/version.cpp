// The version string, compiled in from the repository's VERSION file (cpp/CMakeLists.txt).
#include "chexmask_rt/chexmask_rt.hpp"

namespace chexmask_rt {

const char* version() noexcept { return CHEXMASK_RT_VERSION; }

}  // namespace chexmask_rt
