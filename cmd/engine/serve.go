package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// runServe runs the server until ctx ends (SIGINT or SIGTERM), then shuts
// down gracefully within the configured grace period.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	m := NewMain()
	if err := m.Config.ParseFlags("engine", args, getenv, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "engine:", err)
		return 2
	}
	logger, err := newLogger(m.Config.LogFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "engine:", err)
		return 2
	}
	m.Logger = logger
	if m.Config.CPUProfile != "" {
		stop, err := startCPUProfile(m.Config.CPUProfile)
		if err != nil {
			fmt.Fprintln(stderr, "engine:", err)
			return 2
		}
		defer stop()
	}
	if err := m.Open(ctx); err != nil {
		logger.Error("engine failed to start", "err", err)
		return 1
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("engine shutting down", "grace", m.Config.ShutdownGrace)
	case <-m.Done():
		logger.Error("server stopped", "err", m.Err())
	case <-m.Excluded():
		// Only a new process rejoins (docs/deployment.md): exit non-zero
		// for the supervisor to start one.
		logger.Error("engine leaving: the cluster excluded this node; exiting for a restart")
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.Config.ShutdownGrace)
	defer cancel()
	if err := m.Close(shutdownCtx); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	logger.Info("engine stopped")
	return code
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
