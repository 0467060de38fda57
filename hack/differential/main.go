// Answers what Go's regexp package does with each case read from stdin (one JSON object per line), so that
// hack/differential/regexp.ts can compare meshrev's RE2 engine (src/injector/engine/go-template/re2.ts) with it.
// Standard library only; built and run by `make differential`.
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
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c regexpCase
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			must(out.Encode(regexpResult{Error: err.Error()}))
			continue
		}
		must(out.Encode(regexpResult{
			Match:      re.MatchString(c.Input),
			Find:       re.FindString(c.Input),
			Submatch:   submatches(re, c.Input),
			FindAll:    re.FindAllString(c.Input, c.N),
			Replace:    re.ReplaceAllString(c.Input, c.Replacement),
			ReplaceLit: re.ReplaceAllLiteralString(c.Input, c.Replacement),
			Split:      re.Split(c.Input, c.N),
		}))
	}
	must(in.Err())
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
