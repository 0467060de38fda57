// Answers what Go does with each case read from stdin (one JSON object per line), so that hack/differential can
// compare meshrev's implementations with Go's own: `regexp` cases go to Go's regexp package (regexp.ts compares
// src/injector/engine/go-template/re2.ts), `template` cases to text/template with sprig's functions, as istiod
// parses injection templates (template.ts compares src/injector/engine/go-template/). Built and run by
// `make differential`.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
)

type regexpCase struct {
	Pattern     string `json:"pattern"`
	Input       string `json:"input"`
	Replacement string `json:"replacement"`
	N           int    `json:"n"`
}

// The fields regexp.ts fills in the same way; a pattern that does not compile has only Error.
type regexpResult struct {
	Error      string    `json:"error,omitempty"`
	Match      bool      `json:"match"`
	Find       string    `json:"find"`
	Submatch   []*string `json:"submatch"`
	FindAll    []string  `json:"findAll"`
	Replace    string    `json:"replace"`
	ReplaceLit string    `json:"replaceLiteral"`
	Split      []string  `json:"split"`
}

func main() {
	answer := answerRegexp
	if len(os.Args) > 1 && os.Args[1] == "template" {
		answer = answerTemplate
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		must(out.Encode(answer(in.Bytes())))
	}
	must(in.Err())
}

func answerRegexp(line []byte) any {
	var c regexpCase
	must(json.Unmarshal(line, &c))
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return regexpResult{Error: err.Error()}
	}
	return regexpResult{
		Match:      re.MatchString(c.Input),
		Find:       re.FindString(c.Input),
		Submatch:   submatches(re, c.Input),
		FindAll:    re.FindAllString(c.Input, c.N),
		Replace:    re.ReplaceAllString(c.Input, c.Replacement),
		ReplaceLit: re.ReplaceAllLiteralString(c.Input, c.Replacement),
		Split:      re.Split(c.Input, c.N),
	}
}

// submatches keeps groups that did not take part apart from empty ones (null against "").
func submatches(re *regexp.Regexp, s string) []*string {
	index := re.FindStringSubmatchIndex(s)
	if index == nil {
		return nil
	}
	groups := make([]*string, 0, len(index)/2)
	for i := 0; i < len(index); i += 2 {
		if index[i] < 0 {
			groups = append(groups, nil)
			continue
		}
		group := s[index[i]:index[i+1]]
		groups = append(groups, &group)
	}
	return groups
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
