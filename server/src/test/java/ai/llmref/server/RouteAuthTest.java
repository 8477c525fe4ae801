package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.http.AuthFilter;
import ai.llmref.server.http.HealthService;
import ai.llmref.server.http.Json;
import ai.llmref.server.http.OpenAiService;
import ai.llmref.server.observe.ServerMetrics;
import ai.llmref.server.observe.Tracing;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.http.HttpService;
import java.lang.reflect.Proxy;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Authentication on every route, enumerated from the routing code itself (not from a list kept by
 * hand): {@link Server#apiRouting} and {@link Server#adminRouting} run against a recording
 * {@link HttpRouting.Builder}, so a route added later is covered without touching this test. With
 * keys configured every API route, with every method, and any unknown path, answers 401 without a
 * key; the admin routes (probes, metrics: never behind auth, docs/operations.md) answer without one,
 * and the admin port serves none of the API.
 */
class RouteAuthTest {
    static final String KEY = "sk-routes-0123456789abcdef";
    static final java.net.http.HttpClient HTTP = java.net.http.HttpClient.newHttpClient();

    record Route(String method, String path) {}

    /** The routes a routing function registers, in order; "filter" marks where a filter was added. */
    static List<Route> record(java.util.function.Consumer<HttpRouting.Builder> routing) {
        List<Route> routes = new ArrayList<>();
        HttpRouting.Builder[] self = new HttpRouting.Builder[1];
        self[0] = (HttpRouting.Builder) Proxy.newProxyInstance(RouteAuthTest.class.getClassLoader(),
                new Class<?>[] {HttpRouting.Builder.class}, (proxy, method, args) -> {
                    String name = method.getName();
                    if (name.equals("register")) {
                        for (Object a : args) {
                            if (a instanceof HttpService[] services) {
                                for (HttpService s : services) {
                                    s.routing(self[0]);
                                }
                            }
                        }
                    } else if (name.equals("addFilter")) {
                        routes.add(new Route("filter", ""));
                    } else if (args != null && args.length > 0 && args[0] instanceof String path) {
                        routes.add(new Route(name.toUpperCase(), path));
                    } else if (name.equals("any")) {
                        routes.add(new Route("ANY", "*"));
                    } else if (!method.getReturnType().isAssignableFrom(HttpRouting.Builder.class)) {
                        throw new AssertionError("the recording routing does not know " + method);
                    }
                    return proxy;
                });
        routing.accept(self[0]);
        return routes;
    }

    @Test
    void everyApiRouteNeedsAKeyAndTheAdminRoutesDoNot() throws Exception {
        ServerMetrics metrics = new ServerMetrics(() -> null);
        OpenAiService api = new OpenAiService(() -> null, () -> "loading", new Json(8), new OpenAiService.Limits(1024, 1, 1, 1000, 1, 1000), metrics,
                Tracing.disabled());
        List<Route> apiRoutes = record(r -> Server.apiRouting(r, api, new AuthFilter(List.of(KEY), api, metrics), metrics));
        List<Route> adminRoutes = record(r -> Server.adminRouting(r, new HealthService(null, new Json(8)), metrics));
        assertThat(apiRoutes.subList(0, 4)).as("the filters (Connection: close, request id, target check, key) come before every route")
                .containsOnly(new Route("filter", ""));
        assertThat(apiRoutes).filteredOn(r -> r.method().equals("POST")).hasSizeGreaterThanOrEqualTo(5);
        assertThat(adminRoutes).filteredOn(r -> r.method().equals("filter")).hasSize(2); // Connection: close and the target check, no key

        try (TestServer t = TestServer.start(Map.of("auth.api-keys", KEY))) {
            List<String> methods = List.of("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD");
            List<Route> tried = new ArrayList<>();
            for (Route r : apiRoutes) {
                if (r.method().equals("filter")) {
                    continue;
                }
                String path = r.path().equals("*") ? "/no/such/route" : r.path().replace("{id}", "stories260K");
                for (String m : methods) {
                    HttpResponse<String> res = send(t.base() + path, m, null);
                    assertThat(res.statusCode()).as(m + " " + path).isEqualTo(401);
                    assertThat(res.headers().firstValue("www-authenticate")).as(m + " " + path).hasValue("Bearer");
                    tried.add(new Route(m, path));
                }
                if (!r.method().equals("ANY")) {
                    // and with the key the route is there (not a 404 that the filter happened to precede; a
                    // stored response's routes answer their own 404, "not_found", rather than "unknown_route")
                    HttpResponse<String> ok = send(t.base() + path, r.method(), "Bearer " + KEY);
                    assertThat(ok.statusCode()).as(r + ": " + ok.body()).isNotIn(401, 405);
                    assertThat(ok.body()).as(r.toString()).doesNotContain("unknown_route");
                }
            }
            assertThat(tried).hasSizeGreaterThanOrEqualTo(7 * 7);
            for (Route r : adminRoutes) {
                if (r.method().equals("filter")) {
                    continue;
                }
                assertThat(send(t.admin() + r.path(), r.method(), null).statusCode()).as(r.toString()).isEqualTo(200);
            }
            for (Route r : apiRoutes) {
                if (!r.method().equals("filter") && !r.method().equals("ANY")) {
                    String path = r.path().replace("{id}", "stories260K");
                    assertThat(send(t.admin() + path, r.method(), "Bearer " + KEY).statusCode()).as("admin " + path).isEqualTo(404);
                }
            }
        }
    }

    private static HttpResponse<String> send(String url, String method, String authorization) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url));
        if (authorization != null) {
            b.header("Authorization", authorization);
        }
        boolean body = method.equals("POST") || method.equals("PUT") || method.equals("PATCH");
        b.header("Content-Type", "application/json").method(method, body
                ? HttpRequest.BodyPublishers.ofString("{\"prompt\":\"x\",\"content\":\"x\",\"input\":\"x\",\"tokens\":[1],"
                        + "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2}")
                : HttpRequest.BodyPublishers.noBody());
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }
}
