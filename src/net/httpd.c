/* stub */ #include "net/httpd.h"
