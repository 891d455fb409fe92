/* stub */ #include "core/jv.h"
