/*
 * web — serving the embedded dashboard (see web.h).
 *
 * Caching: index.html is revalidated every time (no-cache) so a new binary's
 * page is seen at once; the assets it names carry the binary's build in
 * their query (?v=) only in spirit — they are small, so they are sent with
 * no-cache too rather than risk an old app.js beside a new page.
 */
#include "http/web.h"

#include <string.h>

const struct web_asset *web_asset_find(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0) return &web_assets[i];
    return NULL;
}

int web_is_route(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
           strncmp(path, "/assets/", 8) == 0;
}

void web_handle(const struct httpd_req *req, struct httpd_resp *resp)
{
    const char *m = httpd_req_method(req), *path = httpd_req_path(req);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        httpd_resp_text(resp, 405, "the dashboard's files are read with GET\n");
        httpd_resp_header(resp, "Allow", "GET, HEAD");
        return;
    }
    const struct web_asset *a =
        web_asset_find(strncmp(path, "/assets/", 8) == 0 ? path + 7 : "/index.html");
    if (!a) {
        httpd_resp_text(resp, 404, "no such file in the dashboard\n");
        return;
    }
    httpd_resp_set(resp, 200, a->type, (const char *)a->data, a->len);
    httpd_resp_header(resp, "Cache-Control", "no-cache");
    httpd_resp_header(resp, "X-Content-Type-Options", "nosniff");
    httpd_resp_header(resp, "X-Frame-Options", "DENY");
    httpd_resp_header(resp, "Referrer-Policy", "no-referrer");
    httpd_resp_header(resp, "Content-Security-Policy",
                      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
                      "data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                      "form-action 'self'");
}
