"""Atari wrappers for the authors' (CleanRL's) preprocessing order and CleanRL's episode handling, written from the
semantics of SB3's atari_wrappers that those scripts use: no-op starts, the RGB max-and-skip, episodic life and
fire-on-reset. gymnasium's own AtariPreprocessing covers the other order (envs/atari.py)."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np


class AuthorsPreprocessing(gym.Wrapper):
    """The FIRE authors' (CleanRL's) preprocessing on an RGB, frameskip-1 ALE env: repeat the action `frame_skip`
    frames summing rewards, take the max of the last two RGB frames (SB3's MaxAndSkipEnv, whose two-frame buffer
    keeps older frames when an episode ends early), resize to `size` x `size` (cv2 INTER_AREA), then grayscale
    (cv2 RGB2GRAY). The reset observation is resized and grayscaled without a max."""

    def __init__(self, env: gym.Env, frame_skip: int, size: int):
        super().__init__(env)
        self.frame_skip, self.size = frame_skip, size
        self.frames = np.zeros((2, *env.observation_space.shape), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), dtype=np.uint8)

    def _warp(self, rgb: np.ndarray) -> np.ndarray:
        resized = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._warp(obs), info

    def step(self, action):
        total, terminated, truncated, info = 0.0, False, False, {}
        for i in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            if i >= self.frame_skip - 2:
                self.frames[i - (self.frame_skip - 2)] = obs
            total += float(reward)
            if terminated or truncated:
                break
        return self._warp(self.frames.max(axis=0)), total, terminated, truncated, info


class NoopReset(gym.Wrapper):
    """After every reset, a uniform number in [1, noop_max] of no-op frames (action 0); a game that ends during them
    is reset again (SB3's NoopResetEnv)."""

    def __init__(self, env: gym.Env, noop_max: int):
        super().__init__(env)
        self.noop_max = noop_max

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.unwrapped.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learning episode (terminated) while the game goes on: the next reset() only takes a
    no-op step unless the game really ended (SB3's EpisodicLifeEnv). Every step's info says `game_over`, so the
    loop logs and evaluates whole games, as CleanRL's RecordEpisodeStatistics does."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives, self.game_over = 0, True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = self.unwrapped.ale.lives()
        terminated = terminated or 0 < lives < self.lives
        self.lives = lives
        return obs, reward, terminated, truncated, {**info, "game_over": self.game_over}

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives, self.game_over = self.unwrapped.ale.lives(), False
        return obs, {**info, "game_over": False}


class FireReset(gym.Wrapper):
    """After every reset press FIRE, then action 2 (games that wait for FIRE to start; SB3's FireResetEnv)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


def has_fire(env: gym.Env) -> bool:
    return "FIRE" in env.unwrapped.get_action_meanings()
