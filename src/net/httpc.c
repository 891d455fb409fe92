/* stub */ #include "net/httpc.h"
