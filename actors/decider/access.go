package decider

// Who may send what, and read what: the vocabulary a kind uses to say which
// of its commands are the engine's own (Decider.Internal) and who may touch
// its streams (Decider.Private). The runtime enforces both; the transport
// only says who is calling (Caller).

// Caller is who a request speaks for, as the transport authenticated it.
// The runtime hands it to a private kind's rule (Decider.Private).
//
// The zero Caller is nobody: it may touch no private stream (an owner ""
// never matches). A server with auth off calls with Anonymous set.
type Caller struct {
	// Anonymous: the server runs without auth, so nobody is identified and
	// there is no owner to check: private streams are open to it. Only the
	// transport's anonymous principal sets it.
	Anonymous bool `json:"anonymous,omitempty"`
	// User is the token's subject ("" when Anonymous).
	User string `json:"user,omitempty"`
	// Email is the token's email address if the token says it is verified
	// (the OIDC claims "email" and "email_verified": true), else "".
	Email string `json:"email,omitempty"`
	// Admin: the token has the claim "admin": true. Admins may read and
	// command every private stream.
	Admin bool `json:"admin,omitempty"`
}

// Access is what a caller asks of a private stream (see Decider.Private).
type Access int

const (
	// Read: its state, its stored events, a subscription.
	Read Access = iota + 1
	// Write: a command.
	Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return "access?"
}
