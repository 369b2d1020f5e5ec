package events

import (
	"crypto/rand"
	"encoding/hex"
)

// MaxEpochLen bounds the length of any store's epoch (Store.Epoch).
const MaxEpochLen = 64

// EpochBytes is how many random bytes an epoch holds; NewEpoch spells them
// as 2*EpochBytes lower-case hex digits.
const EpochBytes = 16

// NewEpoch returns a fresh store epoch: EpochBytes bytes from crypto/rand
// as lower-case hex (32 characters), for a store to adopt when its data is
// created (see Store.Epoch). Two calls never return the same value in
// practice (128 random bits).
func NewEpoch() string {
	var b [EpochBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
