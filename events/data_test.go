package events

import (
	"errors"
	"testing"
)

func TestDecodeData(t *testing.T) {
	type target struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	tests := []struct {
		name    string
		raw     string
		wantErr string // the client message; "" = no error
		want    target
	}{
		{"object", `{"name":"a","n":2}`, "", target{"a", 2}},
		{"empty means {}", ``, "", target{}},
		{"spaces around", " {\"n\":1} \n", "", target{N: 1}},
		{"unknown field", `{"name":"a","x":1}`, `data: unknown field "x"`, target{}},
		{"wrong type", `{"n":"2"}`, `data: field "n": a JSON string is not allowed here`, target{}},
		{"fraction for int", `{"n":1.5}`, `data: field "n": a JSON number 1.5 is not allowed here`, target{}},
		{"array", `[1]`, "data must be a JSON object", target{}},
		{"null", `null`, "data must be a JSON object", target{}},
		{"trailing data", `{"n":1}{"n":2}`, "data: trailing data after the JSON value", target{}},
		{"invalid utf-8", "{\"name\":\"\xff\"}", "data is not valid UTF-8", target{}},
		{"malformed", `{"n":`, "data: unexpected EOF", target{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got target
			err := DecodeData([]byte(tt.raw), &got, ErrInvalidEvent)
			if tt.wantErr != "" {
				var r *Refusal
				if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &r) || r.ClientMessage() != tt.wantErr {
					t.Fatalf("err = %v, want a Refusal of ErrInvalidEvent saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestEncodeDataKeepsHTML(t *testing.T) {
	got, err := EncodeData(map[string]string{"text": "<b>&</b>"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"text":"<b>&</b>"}` {
		t.Fatalf("got %s", got)
	}
}
