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
		wantErr bool
		want    target
	}{
		{"object", `{"name":"a","n":2}`, false, target{"a", 2}},
		{"empty means {}", ``, false, target{}},
		{"spaces around", " {\"n\":1} \n", false, target{N: 1}},
		{"unknown field", `{"name":"a","x":1}`, true, target{}},
		{"wrong type", `{"n":"2"}`, true, target{}},
		{"fraction for int", `{"n":1.5}`, true, target{}},
		{"array", `[1]`, true, target{}},
		{"null", `null`, true, target{}},
		{"trailing data", `{"n":1}{"n":2}`, true, target{}},
		{"invalid utf-8", "{\"name\":\"\xff\"}", true, target{}},
		{"malformed", `{"n":`, true, target{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got target
			err := DecodeData([]byte(tt.raw), &got, ErrInvalidEvent)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidEvent) {
					t.Fatalf("err = %v, want one wrapping ErrInvalidEvent", err)
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
