package mail

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    Config
		wantErr string // substring of the error; empty for success
	}{
		{raw: "smtp://mail.example.com", want: Config{Host: "mail.example.com", Port: 587, TLS: TLSStartTLS, From: "engine@mail.example.com"}},
		{raw: "smtp://mail.example.com:2525/", want: Config{Host: "mail.example.com", Port: 2525, TLS: TLSStartTLS, From: "engine@mail.example.com"}},
		{raw: "smtps://mail.example.com", want: Config{Host: "mail.example.com", Port: 465, TLS: TLSImplicit, From: "engine@mail.example.com"}},
		{raw: "SMTPS://mail.example.com:1465", want: Config{Host: "mail.example.com", Port: 1465, TLS: TLSImplicit, From: "engine@mail.example.com"}},
		{raw: "smtp://user@mail.example.com", want: Config{Host: "mail.example.com", Port: 587, TLS: TLSStartTLS, From: "engine@mail.example.com", Username: "user"}},
		{
			raw:  "smtp://apikey%40example.org:p%40ss%3Aw%2Frd@mail.example.com:587",
			want: Config{Host: "mail.example.com", Port: 587, TLS: TLSStartTLS, From: "engine@mail.example.com", Username: "apikey@example.org", Password: "p@ss:w/rd"},
		},
		{
			raw:  "smtp://localhost:1025?tls=none&from=Engine%20%3Cnoreply%40example.org%3E&helo=engine.example.org&timeout=30s",
			want: Config{Host: "localhost", Port: 1025, TLS: TLSNone, From: "Engine <noreply@example.org>", LocalName: "engine.example.org", Timeout: 30 * time.Second},
		},
		{raw: "smtp://mail.example.com?tls=required", want: Config{Host: "mail.example.com", Port: 587, TLS: TLSRequired, From: "engine@mail.example.com"}},
		{raw: "smtp://mail.example.com?tls=starttls", want: Config{Host: "mail.example.com", Port: 587, TLS: TLSStartTLS, From: "engine@mail.example.com"}},
		{raw: "smtp://192.0.2.7:25", want: Config{Host: "192.0.2.7", Port: 25, TLS: TLSStartTLS, From: "engine@[192.0.2.7]"}},
		{raw: "smtp://[::1]:25", want: Config{Host: "::1", Port: 25, TLS: TLSStartTLS, From: "engine@localhost"}},

		{raw: "", wantErr: "missing scheme"},
		{raw: "mail.example.com:587", wantErr: "scheme"},
		{raw: "http://mail.example.com", wantErr: `unsupported scheme "http"`},
		{raw: "submission://mail.example.com", wantErr: "unsupported scheme"},
		{raw: "smtp://", wantErr: "missing host"},
		{raw: "smtp://:587", wantErr: "missing host"},
		{raw: "smtp://mail.example.com:0", wantErr: "port"},
		{raw: "smtp://mail.example.com:70000", wantErr: "port"},
		{raw: "smtp://mail.example.com:abc", wantErr: "port"},
		{raw: "smtp://mail.example.com/inbox", wantErr: "nothing else"},
		{raw: "smtp://mail.example.com#frag", wantErr: "nothing else"},
		{raw: "smtp://:secret@mail.example.com", wantErr: "password without username"},
		{raw: "smtp://mail.example.com?tls=yes", wantErr: "tls="},
		{raw: "smtp://mail.example.com?tls=implicit", wantErr: "smtps://"},
		{raw: "smtps://mail.example.com?tls=none", wantErr: "always TLS"},
		{raw: "smtp://mail.example.com?form=a%40b.org", wantErr: `unknown option "form"`},
		{raw: "smtp://mail.example.com?from=a%40b.org&from=c%40d.org", wantErr: "2 times"},
		{raw: "smtp://mail.example.com?from=not-an-address", wantErr: "from"},
		{raw: "smtp://mail.example.com?from=a%40b.org%0D%0ABcc%3A%20x%40y.org", wantErr: "from"},
		{raw: "smtp://mail.example.com?timeout=soon", wantErr: "timeout"},
		{raw: "smtp://mail.example.com?timeout=-1s", wantErr: "timeout"},
		{raw: "smtp://mail.example.com?helo=a%20b", wantErr: "local name"},
		{raw: "smtp://user:se%ZZcret@mail.example.com", wantErr: "smtp url"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseURL(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want an error containing %q", tt.raw, got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseURL(%q) =\n%+v, want\n%+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "host only", cfg: Config{Host: "mail.example.com"}},
		{name: "everything", cfg: Config{Host: "mail.example.com", Port: 2525, Username: "u", Password: "p", From: "Engine <e@example.org>", TLS: TLSRequired, LocalName: "engine.example.org", Timeout: -1}},
		{name: "no host", cfg: Config{}, wantErr: "host is required"},
		{name: "host with a path", cfg: Config{Host: "mail.example.com/x"}, wantErr: "not a host name"},
		{name: "negative port", cfg: Config{Host: "h", Port: -1}, wantErr: "port"},
		{name: "bad tls mode", cfg: Config{Host: "h", TLS: "sometimes"}, wantErr: "tls mode"},
		{name: "bad from", cfg: Config{Host: "h", From: "nobody"}, wantErr: "from"},
		{name: "password alone", cfg: Config{Host: "h", Password: "p"}, wantErr: "password without username"},
		{name: "line break in credentials", cfg: Config{Host: "h", Username: "u\r\nQUIT", Password: "p"}, wantErr: "line break"},
		{name: "several problems at once", cfg: Config{Port: 70000, TLS: "x"}, wantErr: "port 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Host: "mail.example.com"}.withDefaults()
	if c.Port != 587 || c.TLS != TLSStartTLS || c.From != "engine@mail.example.com" || c.LocalName != "localhost" || c.Timeout != time.Minute || c.Logger == nil || c.Now == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if c := (Config{Host: "h", TLS: TLSImplicit}).withDefaults(); c.Port != 465 {
		t.Fatalf("implicit TLS port = %d, want 465", c.Port)
	}
}

func TestConfigStringHidesPassword(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Host: "mail.example.com", Username: "u", Password: "secret"}, "smtp://u@mail.example.com:587?from=engine%40mail.example.com&tls=starttls"},
		{Config{Host: "::1", TLS: TLSImplicit}, "smtps://[::1]:465?from=engine%40localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.cfg.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			// What String prints parses back to the same settings.
			back, err := ParseURL(tt.cfg.String())
			if err != nil {
				t.Fatalf("ParseURL(String()): %v", err)
			}
			want := tt.cfg.withDefaults()
			if back.Host != want.Host || back.Port != want.Port || back.TLS != want.TLS || back.From != want.From || back.Username != want.Username {
				t.Fatalf("round trip: %+v, want %+v", back, want)
			}
		})
	}
}
