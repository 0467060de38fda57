package main

import (
	"bytes"
	"encoding/json"
	"text/template"

	"github.com/Masterminds/sprig/v3"
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

func answerTemplate(line []byte) any {
	var c templateCase
	must(json.Unmarshal(line, &c))
	var data any
	must(json.Unmarshal(c.Data, &data))
	t, err := template.New("t").Funcs(sprig.TxtFuncMap()).Parse(c.Template)
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
