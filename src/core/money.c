/* stub */ #include "core/money.h"
