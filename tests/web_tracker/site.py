"""A customer's web shop for the browser tests: stock analytics-next plus the crmrules snippet.

The shop and the sidecar are on different origins (two loopback ports), as in production: every call the
tracker gets is cross-origin, preflights included.

    /                 home: analytics.page()
    /products/<n>     product page: page() and track("Product Viewed", {product_id})
    /account          "logged in": page() and identify("user-42", {email, firstName, name})
    /plain/<page>     the same shop without analytics: the snippet works standalone
    ?batching=1       analytics-next in batching mode (POST /v1/b)
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from flask import Flask, Response, request, send_from_directory

ANALYTICS_PAGE = """<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<title>{title}</title>
<script>window.analytics = {{ _cdn: location.origin + "/vendor" }};</script>
<script src="/vendor/analytics-next/bundles/index.js"></script>
<script>
  (function () {{
    var writeKey = {write_key};
    var segmentio = {{ apiHost: {api_host}, protocol: "http"{delivery} }};
    var analytics = AnalyticsNext.AnalyticsBrowser.load(
      {{ writeKey: writeKey, cdnURL: location.origin + "/vendor",
         cdnSettings: {{ integrations: {{ "Segment.io": Object.assign({{ apiKey: writeKey }}, segmentio) }},
                         metrics: {{ sampleRate: 0 }} }} }},
      {{ integrations: {{ "Segment.io": segmentio }} }});
    window.analytics = analytics;  // where crmrules.js looks for it, as with Segment's own snippet
    window.__sent = Promise.all([analytics.page(){calls}]).then(function () {{ return true; }});
  }})();
</script>
<script src="{sidecar}/v1/crmrules.js" data-write-key="{raw_write_key}" defer></script>
</head>
<body style="font-family: 'Noto Sans CJK KR', 'Liberation Sans', sans-serif; margin: 40px">
<h1>{title}</h1>
<p>크롬 테스트 상점: {title}</p>
</body>
</html>
"""

PLAIN_PAGE = """<!doctype html>
<html lang="ko">
<head><meta charset="utf-8"><title>{title}</title>
<script src="{sidecar}/v1/crmrules.js" data-write-key="{raw_write_key}" defer></script>
</head>
<body><h1>{title}</h1></body>
</html>
"""


def shop_app(umd_dir: Path, sidecar_url: str, write_key: str) -> Flask:
    app = Flask("shop")
    sidecar = html.escape(sidecar_url, quote=True)
    api_host = sidecar_url.split("://", 1)[1] + "/v1"

    def page(title: str, calls: str = "") -> Response:
        # ?batching=1: analytics-next's batching delivery (POST /v1/b), flushed every 100 ms
        delivery = (', deliveryStrategy: { strategy: "batching", config: { size: 10, timeout: 100 } }'
                    if request.args.get("batching") else "")
        body = ANALYTICS_PAGE.format(title=html.escape(title), write_key=json.dumps(write_key),
                                     raw_write_key=html.escape(write_key, quote=True),
                                     api_host=json.dumps(api_host), sidecar=sidecar, calls=calls,
                                     delivery=delivery)
        return Response(body, content_type="text/html; charset=utf-8")

    @app.get("/")
    def home() -> Response:
        return page("홈")

    @app.get("/products/<int:n>")
    def product(n: int) -> Response:
        return page(f"상품 {n}", f', analytics.track("Product Viewed", {{ product_id: "p{n}", price: 19000 }})')

    @app.get("/account")
    def account() -> Response:
        return page("내 계정", ', analytics.identify("user-42", { email: "kim@example.com", firstName: "유진", '
                              'name: "김유진" })')

    @app.get("/plain/<name>")
    def plain(name: str) -> Response:
        return Response(PLAIN_PAGE.format(title=html.escape(name), sidecar=sidecar,
                                          raw_write_key=html.escape(write_key, quote=True)),
                        content_type="text/html; charset=utf-8")

    app.add_url_rule("/favicon.ico", "favicon", lambda: Response(status=204))
    app.add_url_rule("/vendor/analytics-next/bundles/<path:name>", "vendor",
                     lambda name: send_from_directory(umd_dir, name))
    return app
