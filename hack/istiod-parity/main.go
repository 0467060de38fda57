// istiod's own sidecar injector, in process, for `make istiod-parity`: it reads one case per line on stdin (the
// injector ConfigMap's config and values, the mesh config, the revision and an AdmissionReview), serves the review
// through istiod's webhook handler exactly as kube-apiserver's request would be served, and writes istiod's
// AdmissionReview response as one line on stdout. The native-sidecar mode is istiod's ENABLE_NATIVE_SIDECARS,
// read from the environment when the process starts, as in istiod.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	corev1 "k8s.io/api/core/v1"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/kube/inject"
	"istio.io/istio/pkg/kube/multicluster"
	"istio.io/istio/pkg/log"
)

type injectionCase struct {
	Config   string          `json:"config"`
	Values   string          `json:"values"`
	Mesh     string          `json:"mesh"`
	Revision string          `json:"revision"`
	Review   json.RawMessage `json:"review"`
}

type answer struct {
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response,omitempty"`
	// The pod as istiod's Go structs write it: what istiod's JSON Patch applies to (kube-apiserver sends pods in
	// that form already).
	Base  json.RawMessage `json:"base,omitempty"`
	Error string          `json:"error,omitempty"`
}

func main() {
	// istiod logs every refused pod; the comparison only wants the answers.
	for _, scope := range log.Scopes() {
		scope.SetOutputLevel(log.NoneLevel)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<28)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var c injectionCase
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		line, err := json.Marshal(serve(c))
		if err != nil {
			panic(err)
		}
		out.Write(line)
		out.WriteString("\n")
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}

// staticWatcher hands istiod's webhook one injector ConfigMap, as its file and ConfigMap watchers would.
type staticWatcher struct {
	config *inject.Config
	values string
}

func (w staticWatcher) SetHandler(func(*inject.Config, string) error) {}
func (w staticWatcher) Run(<-chan struct{})                           {}
func (w staticWatcher) Get() (*inject.Config, string, error)          { return w.config, w.values, nil }

// serve builds istiod's webhook for the case's settings, as istiod would from its ConfigMaps, and serves the review.
func serve(c injectionCase) answer {
	config, err := inject.UnmarshalConfig([]byte(c.Config))
	if err != nil {
		return answer{Error: fmt.Sprintf("injector config: %v", err)}
	}
	meshConfig, err := mesh.ApplyMeshConfigDefaults(c.Mesh)
	if err != nil {
		return answer{Error: fmt.Sprintf("mesh config: %v", err)}
	}
	store := model.NewFakeStore()
	env := model.Environment{Watcher: meshwatcher.NewTestWatcher(meshConfig), ConfigStore: store}
	env.SetPushContext(&model.PushContext{ProxyConfigs: model.GetProxyConfigs(store, meshConfig)})
	watcher := staticWatcher{config: &config, values: c.Values}
	mux := http.NewServeMux()
	if _, err := inject.NewWebhook(inject.WebhookParameters{
		Watcher:      watcher,
		Env:          &env,
		Mux:          mux,
		Revision:     c.Revision,
		MultiCluster: multicluster.NewFakeController(),
	}); err != nil {
		return answer{Error: fmt.Sprintf("webhook: %v", err)}
	}
	request := httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(c.Review))
	request.Header.Set("Content-Type", "application/json")
	recorder := httptest.NewRecorder()
	mux.ServeHTTP(recorder, request)
	body := recorder.Body.Bytes()
	if !json.Valid(body) {
		return answer{Status: recorder.Code, Error: string(body)}
	}
	var review struct {
		Request struct {
			Object corev1.Pod `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(c.Review, &review); err != nil {
		return answer{Status: recorder.Code, Response: body, Error: fmt.Sprintf("pod: %v", err)}
	}
	base, err := json.Marshal(&review.Request.Object)
	if err != nil {
		panic(err)
	}
	return answer{Status: recorder.Code, Response: body, Base: base}
}
