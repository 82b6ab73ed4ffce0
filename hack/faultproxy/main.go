// faultproxy: a reverse proxy in front of a local OCI registry that misbehaves on request.
//
// The fault is chosen by the image name, so concurrent tests never share state:
//
//	127.0.0.1:PORT/f/<mode>-<window>-<nonce>/<repo>:<tag>
//
// is served as <repo>:<tag> from the upstream registry, except that for <window> (e.g. 30s, or
// "forever") after the first request for that name, requests get <mode>:
//
//	pass   nothing
//	429    429 Too Many Requests on every request
//	429m   429 with Docker Hub's TOOMANYREQUESTS body, only on GET of a manifest (HEAD passes)
//	502    502 Bad Gateway; 503: 503 Service Unavailable
//	reset  the connection is reset (TCP RST) before any response
//	stall  the request hangs until the window ends, then the connection is closed
//	401    401 Unauthorized with a Basic challenge
//	404    404 MANIFEST_UNKNOWN on manifests
//
// Any other path goes to the upstream unchanged. GET /_faultproxy/hits?name=<mode>-<window>-<nonce>
// lists the requests seen for a name (time, method, path, status) as JSON.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"time"
)

// faultPath: /v2/f/<mode>-<window>-<nonce>/<repo>/(manifests|blobs|tags)/...
var faultPath = regexp.MustCompile(`^/v2/f/((pass|429m?|502|503|reset|stall|401|404)-(forever|[0-9]+s)-[a-z0-9]+)/(.+/(manifests|blobs|tags)/.*)$`)

const dockerHubLimit = `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}`

type hit struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
}

type proxy struct {
	upstream *httputil.ReverseProxy
	mu       sync.Mutex
	first    map[string]time.Time
	hits     map[string][]hit
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5001", "address to serve on")
	upstreamURL := flag.String("upstream", "http://127.0.0.1:5000", "the registry behind the proxy")
	flag.Parse()
	u, err := url.Parse(*upstreamURL)
	if err != nil {
		log.Fatalf("bad -upstream: %v", err)
	}
	p := &proxy{upstream: httputil.NewSingleHostReverseProxy(u), first: map[string]time.Time{}, hits: map[string][]hit{}}
	log.Printf("faultproxy on %s -> %s", *listen, u)
	log.Fatal(http.ListenAndServe(*listen, p))
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_faultproxy/hits" {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.hits[r.URL.Query().Get("name")])
		return
	}
	m := faultPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		p.upstream.ServeHTTP(w, r)
		return
	}
	name, mode, window, rest := m[1], m[2], m[3], m[4]
	end := p.windowEnd(name, window)
	status := 0
	if time.Now().Before(end) {
		status = fault(w, r, mode, m[5], end)
	}
	if status == 0 {
		r.URL.Path = "/v2/" + rest
		r.URL.RawPath = ""
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		p.upstream.ServeHTTP(rec, r)
		status = rec.status
	}
	p.record(name, hit{Time: time.Now().UTC(), Method: r.Method, Path: r.URL.Path, Status: status})
	log.Printf("%s %s %s -> %d", name, r.Method, r.URL.Path, status)
}

// windowEnd: the end of the fault window of name, which starts at its first request.
func (p *proxy) windowEnd(name, window string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	start, ok := p.first[name]
	if !ok {
		start = time.Now()
		p.first[name] = start
	}
	if window == "forever" {
		return start.Add(100 * 365 * 24 * time.Hour)
	}
	d, _ := time.ParseDuration(window)
	return start.Add(d)
}

func (p *proxy) record(name string, h hit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hits[name] = append(p.hits[name], h)
}

// fault answers r as mode says and returns the status sent (-1: connection dropped), or 0 when the
// request should pass.
func fault(w http.ResponseWriter, r *http.Request, mode, kind string, end time.Time) int {
	manifest := kind == "manifests"
	switch mode {
	case "pass":
		return 0
	case "429":
		return registryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "too many requests")
	case "429m":
		if !manifest || r.Method != http.MethodGet {
			return 0
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(dockerHubLimit))
		return http.StatusTooManyRequests
	case "502":
		return registryError(w, http.StatusBadGateway, "UNAVAILABLE", "bad gateway")
	case "503":
		return registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "service unavailable")
	case "401":
		w.Header().Set("WWW-Authenticate", `Basic realm="faultproxy"`)
		return registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	case "404":
		if !manifest {
			return 0
		}
		return registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
	case "stall":
		select {
		case <-time.After(time.Until(end)):
		case <-r.Context().Done():
		}
		return drop(w, false)
	case "reset":
		return drop(w, true)
	}
	return 0
}

func registryError(w http.ResponseWriter, status int, code, message string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	_, _ = w.Write(body)
	return status
}

// drop closes the client connection without a response; with reset, by a TCP RST.
func drop(w http.ResponseWriter, reset bool) int {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok && reset {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
	return -1
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush keeps streamed blobs flowing through the reverse proxy.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
