/*
 * web — the dashboard's files (HTML, CSS, JS under web/), embedded in the
 * binary at build time by cmake/embed.cmake, and the answers that serve
 * them: no file is read at run time and nothing is fetched from elsewhere.
 *
 * Owns the static routes: "/" and "/index.html" are the dashboard's one
 * page, "/assets/<name>" every other file of web/. It never answers an API
 * request (api.c) and needs no login: the files hold no data, the page asks
 * the API for everything and shows the login form when the API says 401.
 */
#ifndef TH_HTTP_WEB_H
#define TH_HTTP_WEB_H

#include <stddef.h>

#include "net/httpd.h"

struct web_asset {
    const char *path; /* "/app.js" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* The generated table (web_assets.c in the build directory). */
extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

/* The asset for path ("/app.js"), or NULL. */
const struct web_asset *web_asset_find(const char *path);

/* 1 when path is a dashboard route ("/", "/index.html", "/assets/..."). */
int web_is_route(const char *path);

/*
 * Answers a GET or HEAD for a dashboard route: the file with its type, a
 * Content-Security-Policy that allows only this origin's scripts and
 * styles (no inline script, no other host), X-Frame-Options DENY (no
 * framing, so no clickjacking), nosniff and no-referrer; 404 for an unknown
 * asset, 405 for other methods.
 */
void web_handle(const struct httpd_req *req, struct httpd_resp *resp);

#endif
