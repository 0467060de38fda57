package main

import (
	"bytes"
	"encoding/json"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

type templateCase struct {
	Template string          `json:"template"`
	Data     json.RawMessage `json:"data"`
}

// What Go's text/template (with sprig's functions, as istiod parses injection templates) makes of a case.
type templateResult struct {
	Output     *string `json:"output,omitempty"`
	ParseError string  `json:"parseError,omitempty"`
	ExecError  string  `json:"execError,omitempty"`
}

// The functions of istiod's injection function map that are library calls, so that meshrev's versions of them
// (src/injector/engine/custom-templates.ts) are compared too. istiod's toYaml marshals with sigs.k8s.io/yaml and
// answers "" when that fails.
var istioFunctions = template.FuncMap{
	"toYaml": func(value any) string {
		out, err := yaml.Marshal(value)
		if err != nil {
			return ""
		}
		return string(out)
	},
}

func answerTemplate(line []byte) any {
	var c templateCase
	must(json.Unmarshal(line, &c))
	var data any
	must(json.Unmarshal(c.Data, &data))
	t, err := template.New("t").Funcs(sprig.TxtFuncMap()).Funcs(istioFunctions).Parse(c.Template)
	if err != nil {
		return templateResult{ParseError: err.Error()}
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return templateResult{ExecError: err.Error()}
	}
	text := out.String()
	return templateResult{Output: &text}
}
