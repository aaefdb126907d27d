"""Classroom exercises: answer checkers with hints, and the tool that makes student copies.

In a chapter, a coding exercise has a cell where the learner writes the answer and a cell that
checks it::

    def close_labelled_resample(close, minutes):
        # BEGIN SOLUTION
        return close.resample(f"{minutes}min", label="right", closed="right").last().dropna()
        # END SOLUTION

    check("ch01-right-labels", close_labelled_resample)

:func:`check` prints a pass, or a fail with a hint that names what is wrong (wrong shape, a future
value used, an off-by-one), never a bare traceback; an answer that is still ``None`` or raises
``NotImplementedError`` is reported as "not attempted yet".

``python -m msa_lib.exercises make-student-copies SRC DEST`` (``make student``) copies every
notebook with the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` replaced by a stub, and the
``{solution}`` blocks removed from the prose. The stub is ``raise NotImplementedError`` at the
marker's indentation, or the code written after ``->`` on the marker line
(``# BEGIN SOLUTION -> answer = None``).

Verdicts and hints speak the reader's language, English or Russian (:func:`language`): the
environment variable ``MSA_LANG`` (``en`` or ``ru``) if set; otherwise the content of the first
``.msa-language`` file found in the current folder or above it (the Russian edition has
``ru/.msa-language`` holding ``ru``, so its notebooks, whose kernels run in their own folder, talk
Russian); otherwise English. Any other value is an error. A student copy's placeholder prose
follows the language of the source notebook's folder, and the copies of a folder governed by a
``.msa-language`` file get a copy of that file.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EXERCISES", "LANGUAGE_FILE", "CheckResult", "Exercise", "Hint", "check", "language",
           "make_student_copy", "make_student_copies", "solution_code", "strip_solutions",
           "web_edition"]

LANGUAGE_FILE = ".msa-language"
_LANGUAGES = ("en", "ru")


def _valid_language(value: str, source: str) -> str:
    code = value.strip().lower()
    if code not in _LANGUAGES:
        raise ValueError(f"{source}: {value.strip()!r} is not a supported language; "
                         f"use one of {', '.join(map(repr, _LANGUAGES))}")
    return code


def _language_file(start: str | Path | None = None) -> Path | None:
    """The first ``.msa-language`` file in ``start`` (default: the working folder) or above it."""
    folder = Path.cwd() if start is None else Path(start)
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / LANGUAGE_FILE).is_file():
            return candidate / LANGUAGE_FILE
    return None


def language(start: str | Path | None = None) -> str:
    """The language of verdicts and hints: ``"en"`` or ``"ru"``.

    ``MSA_LANG`` if set and not empty; otherwise the content of the first ``.msa-language`` file
    in ``start`` (default: the working folder) or in a folder above it; otherwise ``"en"``. Case
    and surrounding whitespace do not matter; any other value raises :class:`ValueError`.
    """
    value = os.environ.get("MSA_LANG", "")
    if value.strip():
        return _valid_language(value, "environment variable MSA_LANG")
    file = _language_file(start)
    if file is not None:
        return _valid_language(file.read_text(encoding="utf-8-sig"), f"language file {file}")
    return "en"


def _tr(en: str, ru: str) -> str:
    """The message in the reader's language (see :func:`language`)."""
    return ru if language() == "ru" else en


class Hint(Exception):
    """Raised by a checker: the answer is wrong, and the message says why."""


class NotAttempted(Exception):
    """Raised by a checker when the answer is still the stub."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is, how hard, and the function that checks an answer."""

    id: str
    chapter: str
    title: str
    difficulty: str  # "easy", "medium" or "hard"
    kind: str  # "code" (write a function) or "predict" (predict a value, then check)
    checker: Callable[[Any], None]


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found; true only for a correct answer."""

    exercise_id: str
    status: str  # "pass", "fail" or "not attempted"
    message: str
    printed: bool = field(default=False, compare=False, repr=False)  # check() printed the verdict

    def __bool__(self) -> bool:
        return self.status == "pass"

    def _ipython_display_(self) -> None:
        # A notebook cell ending in check(...) shows the verdict once: the line check() printed.
        if not self.printed:
            print(self)

    def __str__(self) -> str:
        mark = {"pass": "PASS", "fail": "FAIL", "not attempted": "TODO"}[self.status]
        return f"[{mark}] {self.exercise_id}: {self.message}"


EXERCISES: dict[str, Exercise] = {}


def _exercise(id: str, chapter: str, title: str, difficulty: str, kind: str):
    def register(checker: Callable[[Any], None]) -> Callable[[Any], None]:
        if id in EXERCISES:
            raise ValueError(f"exercise {id!r} registered twice")
        EXERCISES[id] = Exercise(id, chapter, title, difficulty, kind, checker)
        return checker

    return register


def check(exercise_id: str, answer: Any, *, quiet: bool = False) -> CheckResult:
    """Check ``answer`` for the exercise ``exercise_id``, print the verdict and return it.

    Parameters
    ----------
    exercise_id : str
        For example ``"ch01-right-labels"``; see :data:`EXERCISES`.
    answer : Any
        The learner's function (coding exercises) or value (predict-then-check exercises).
        ``None`` means "not attempted yet".
    quiet : bool
        Return the result without printing it.
    """
    if exercise_id not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; known: {sorted(EXERCISES)}")
    exercise = EXERCISES[exercise_id]
    language()  # a bad MSA_LANG or .msa-language is an error of its own, not a wrong answer
    try:
        if answer is None or answer is Ellipsis:
            raise NotAttempted
        exercise.checker(answer)
        result = CheckResult(exercise_id, "pass", _tr("correct, well done.", "верно, отлично."))
    except (NotAttempted, NotImplementedError):
        result = CheckResult(exercise_id, "not attempted",
                             _tr("not attempted yet.", "ответа пока нет."))
    except Hint as hint:
        result = CheckResult(exercise_id, "fail", _tr(f"not yet. {hint}", f"пока неверно. {hint}"))
    except Exception as error:  # the checker itself should not fail; report, never a traceback
        result = CheckResult(exercise_id, "fail",
                             _tr(f"not yet. Checking raised {type(error).__name__}: {error}",
                                 f"пока неверно. Проверка выбросила исключение "
                                 f"{type(error).__name__}: {error}"))
    if not quiet:
        print(result)
        result = replace(result, printed=True)
    return result


# --------------------------------------------------------------------------------------------------
# helpers for checkers
# --------------------------------------------------------------------------------------------------
def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning its exceptions into hints."""
    if not callable(function):
        raise Hint(_tr(f"the answer should be a function, got {type(function).__name__}",
                       f"ответом должна быть функция, а получен объект типа "
                       f"{type(function).__name__}"))
    try:
        return function(*args, **kwargs)
    except (NotImplementedError, NotAttempted):
        raise NotAttempted from None
    except Exception as error:
        raise Hint(_tr(f"calling your function raised {type(error).__name__}: {error}",
                       f"при вызове ваша функция выбросила исключение "
                       f"{type(error).__name__}: {error}")) from None


def _as_float_array(value: Any, what: str) -> np.ndarray:
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if value is None:
        raise Hint(_tr(f"{what} should be numbers (an array), got None",
                       f"{what}: ожидались числа (массив), а получено None"))
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise Hint(_tr(f"{what} should be numbers (an array), got {type(value).__name__}",
                       f"{what}: ожидались числа (массив), а получен объект типа "
                       f"{type(value).__name__}")) from None


def _expect_shape(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if array.shape != shape:
        if array.shape == shape[::-1]:
            raise Hint(_tr(f"{what} has shape {array.shape}: transposed, expected {shape}",
                           f"{what}: форма {array.shape} — массив транспонирован, "
                           f"ожидалась {shape}"))
        raise Hint(_tr(f"{what} has shape {array.shape}, expected {shape}",
                       f"{what}: форма {array.shape}, а ожидалась {shape}"))


def _letters(answer: Any) -> set[str]:
    if isinstance(answer, str):
        items = re.findall(r"[a-z]", answer.lower())
    else:
        try:
            items = [str(a).strip().lower() for a in answer]
        except TypeError:
            raise Hint(_tr("answer with the letters of your choice, e.g. {'a', 'c'} or 'ac'",
                           "ответьте буквами выбранных вариантов, например {'a', 'c'} "
                           "или 'ac'")) from None
    return set(items)


def _number(answer: Any, what: str | None = None) -> float:
    try:
        return float(answer)
    except (TypeError, ValueError):
        what = _tr("the answer", "ответ") if what is None else what
        raise Hint(_tr(f"{what} should be a number, got {answer!r}",
                       f"{what}: ожидалось число, а получено {answer!r}")) from None


# --------------------------------------------------------------------------------------------------
# Chapter 01: market data and scales
# --------------------------------------------------------------------------------------------------
def _minute_closes(seed: int = 1, hours: int = 3) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-01 00:01", periods=hours * 60, freq="1min", tz="UTC", name="time")
    return pd.Series(100 * np.exp(np.cumsum(1e-3 * rng.standard_normal(len(index)))), index=index,
                     name="close")


@_exercise("ch01-right-labels", "01_market_data_and_scales",
           "Write a resampler that labels bars by their close time", "easy", "code")
def _check_right_labels(function: Any) -> None:
    close = _minute_closes()
    original = close.copy()
    minutes = 15
    expected = close.resample(f"{minutes}min", label="right", closed="right").last().dropna()
    got = _call(function, close, minutes)
    if not close.equals(original):
        raise Hint(_tr("your function changed its input: work on a copy",
                       "ваша функция изменила свои входные данные: работайте с копией"))
    if not isinstance(got, pd.Series):
        raise Hint(_tr(f"return a pandas Series of closes, got {type(got).__name__}",
                       f"верните pandas Series с ценами закрытия, а получен объект типа "
                       f"{type(got).__name__}"))
    got = got.dropna()
    rule = f"{minutes}min"

    def variant(label: str, closed: str, how: str = "last") -> pd.Series:
        return getattr(close.resample(rule, label=label, closed=closed), how)().dropna()

    def same(candidate: pd.Series) -> bool:
        return got.index.equals(candidate.index) and np.allclose(got.to_numpy(), candidate.to_numpy())

    if same(variant("left", "left")) or same(variant("left", "right")):
        raise Hint(_tr("your labels are the bars' START times (pandas' default label='left'); "
                       "a bar must be stamped by the time it closes, when its close became known",
                       "ваши метки — время НАЧАЛА баров (в pandas по умолчанию label='left'); "
                       "бар должен быть помечен временем своего закрытия — моментом, когда его "
                       "цена закрытия стала известна"))
    if same(variant("right", "left")):
        raise Hint(_tr("off by one minute: the bar stamped T must include the 1-minute bar that "
                       "closes at T (closed='right'), and not the one that closes at T - N",
                       "ошибка на одну минуту: бар с меткой T должен включать минутный бар, "
                       "который закрывается в T (closed='right'), а не тот, что закрывается "
                       "в T - N"))
    if same(variant("right", "right", "first")):
        raise Hint(_tr("each bar's close is the LAST 1-minute close inside it, not the first",
                       "цена закрытия бара — это ПОСЛЕДНЯЯ цена закрытия минутного бара внутри "
                       "него, а не первая"))
    if not got.index.equals(expected.index):
        raise Hint(_tr(f"expected {len(expected)} bars stamped {expected.index[0]} ... "
                       f"{expected.index[-1]}, got {len(got)} bars stamped "
                       f"{got.index[0] if len(got) else '-'} ...",
                       f"ожидалось баров: {len(expected)}, с метками {expected.index[0]} ... "
                       f"{expected.index[-1]}; получено баров: {len(got)}, с метками "
                       f"{got.index[0] if len(got) else '-'} ..."))
    wrong = ~np.isclose(got.to_numpy(), expected.to_numpy())
    if wrong.any():
        raise Hint(_tr(f"the close of the bar stamped {got.index[np.argmax(wrong)]} is wrong",
                       f"неверная цена закрытия у бара с меткой "
                       f"{got.index[np.argmax(wrong)]}"))


@_exercise("ch01-find-the-leak", "01_market_data_and_scales",
           "Find the features that see the future", "medium", "predict")
def _check_find_the_leak(answer: Any) -> None:
    chosen = _letters(answer)
    unknown = chosen - set("abcd")
    if unknown:
        raise Hint(_tr(f"choose among a, b, c and d (got {sorted(unknown)})",
                       f"выбирайте из вариантов a, b, c и d (получено {sorted(unknown)})"))
    if "a" in chosen:
        raise Hint(_tr("(a) uses only the last hourly bar that has closed by t: no leak",
                       "(a) использует только последний часовой бар, закрывшийся к моменту t: "
                       "утечки данных нет"))
    if "c" in chosen:
        raise Hint(_tr("(c) uses 1-minute returns up to and including t: no leak",
                       "(c) использует минутные доходности вплоть до t включительно: "
                       "утечки данных нет"))
    if "b" not in chosen:
        raise Hint(_tr("look again at (b): the hourly bar labelled 10:00 by its start closes at "
                       "10:59",
                       "посмотрите ещё раз на (b): часовой бар, помеченный временем своего "
                       "начала 10:00, закрывается в 10:59"))
    if "d" not in chosen:
        raise Hint(_tr("look again at (d): a mean and standard deviation over the whole series "
                       "include every later price",
                       "посмотрите ещё раз на (d): среднее и стандартное отклонение по всему ряду "
                       "включают все более поздние цены"))


# --------------------------------------------------------------------------------------------------
# Chapter 02: decomposition
# --------------------------------------------------------------------------------------------------
@_exercise("ch02-mra-count", "02_decomposition",
           "Count the components of a wavelet multiresolution analysis", "easy", "predict")
def _check_mra_count(answer: Any) -> None:
    try:
        count, sums_back = answer
    except (TypeError, ValueError):
        raise Hint(_tr("answer with a pair: (number of components, do they sum to the signal?)",
                       "ответьте парой: (число компонент, складываются ли они в исходный "
                       "сигнал?)")) from None
    count = _number(count, _tr("the number of components", "число компонент"))
    if count == 4:
        raise Hint(_tr("4 counts the detail levels only: the approximation is a component too",
                       "4 — это только детализирующие уровни, а аппроксимация — тоже "
                       "компонента"))
    if count != 5:
        raise Hint(_tr("a level-J analysis has J detail components plus one approximation",
                       "анализ уровня J даёт J детализирующих компонент и ещё одну "
                       "аппроксимацию"))
    if sums_back is not True:
        raise Hint(_tr("a multiresolution analysis is additive: its components sum back to the "
                       "signal exactly (up to rounding)",
                       "кратномасштабный анализ аддитивен: его компоненты в сумме дают ровно "
                       "исходный сигнал (с точностью до округления)"))


def _demean(window: np.ndarray) -> np.ndarray:
    return window - window.mean()


@_exercise("ch02-causal-rolling", "02_decomposition",
           "Make any transform causal with a rolling window", "medium", "code")
def _check_causal_rolling(function: Any) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(60).cumsum()
    original = x.copy()
    window = 8
    expected = np.full(len(x), np.nan)
    for t in range(window - 1, len(x)):
        expected[t] = _demean(x[t - window + 1 : t + 1])[-1]
    got = _as_float_array(_call(function, x, window, _demean), _tr("the result", "результат"))
    if not np.array_equal(x, original):
        raise Hint(_tr("your function changed its input array: work on a copy",
                       "ваша функция изменила входной массив: работайте с копией"))
    _expect_shape(got, x.shape, _tr("the result", "результат"))
    if np.allclose(got, _demean(x), equal_nan=False):
        raise Hint(_tr("you transformed the whole series once: the value at t then depends on "
                       "the future (the mean includes later points)",
                       "вы преобразовали весь ряд разом: тогда значение в момент t зависит от "
                       "будущего (среднее включает более поздние точки)"))
    if not np.isnan(got[: window - 1]).all():
        raise Hint(_tr(f"the first {window - 1} points have no full window: set them to NaN",
                       f"у первых {window - 1} точек нет полного окна: запишите в них NaN"))
    shifted = np.full(len(x), np.nan)
    for t in range(window, len(x)):
        shifted[t] = _demean(x[t - window : t])[-1]
    if np.allclose(got[window:], shifted[window:]):
        raise Hint(_tr("off by one: your window ends at t-1; the window for t must include x[t]",
                       "ошибка на единицу: ваше окно заканчивается в t-1, а окно для момента t "
                       "должно включать x[t]"))
    future = x.copy()
    future[40:] += 10.0
    got_future = _as_float_array(_call(function, future, window, _demean),
                                 _tr("the result", "результат"))
    if not np.allclose(got_future[:40], got[:40], equal_nan=True):
        raise Hint(_tr("changing x after t=40 changed your output before t=40: it uses the "
                       "future",
                       "изменение x после t=40 изменило ваш результат до t=40: это заглядывание "
                       "в будущее"))
    wrong = ~np.isclose(got, expected, equal_nan=True)
    if wrong.any():
        raise Hint(_tr(f"the value at t={int(np.argmax(wrong))} is not the last point of the "
                       "transformed window ending at t",
                       f"значение в t={int(np.argmax(wrong))} — не последняя точка "
                       "преобразованного окна, которое заканчивается в t"))


# --------------------------------------------------------------------------------------------------
# Chapter 03: scale encoders
# --------------------------------------------------------------------------------------------------
def _sinusoidal(length: int, d_model: int) -> np.ndarray:
    position = np.arange(length)[:, None]
    frequency = 10_000.0 ** (-np.arange(0, d_model, 2) / d_model)
    encoding = np.zeros((length, d_model))
    encoding[:, 0::2] = np.sin(position * frequency)
    encoding[:, 1::2] = np.cos(position * frequency)
    return encoding


@_exercise("ch03-sinusoidal", "03_scale_encoders",
           "Implement the sinusoidal positional encoding", "medium", "code")
def _check_sinusoidal(function: Any) -> None:
    length, d_model = 12, 8
    expected = _sinusoidal(length, d_model)
    got = _as_float_array(_call(function, length, d_model),
                          _tr("the encoding", "позиционное кодирование"))
    _expect_shape(got, (length, d_model), _tr("the encoding", "позиционное кодирование"))
    if np.allclose(got[:, 0::2], expected[:, 1::2]) and np.allclose(got[:, 1::2], expected[:, 0::2]):
        raise Hint(_tr("sine and cosine are swapped: even columns take the sine, odd columns the "
                       "cosine",
                       "синус и косинус перепутаны местами: в чётных столбцах синус, "
                       "в нечётных — косинус"))
    slow = np.zeros((length, d_model))
    frequency = 10_000.0 ** (-np.arange(d_model // 2) / d_model)
    slow[:, 0::2], slow[:, 1::2] = np.sin(np.arange(length)[:, None] * frequency), np.cos(
        np.arange(length)[:, None] * frequency)
    if np.allclose(got, slow):
        raise Hint(_tr("the exponent should be 2i/d_model (the even column index over d_model), "
                       "not i/d_model",
                       "показатель степени должен быть 2i/d_model (чётный номер столбца, "
                       "делённый на d_model), а не i/d_model"))
    wrong = ~np.isclose(got, expected, atol=1e-6)
    if wrong.any():
        row, col = np.argwhere(wrong)[0]
        raise Hint(_tr(f"position {row}, column {col} is {got[row, col]:.4f}, expected "
                       f"{expected[row, col]:.4f}",
                       f"в позиции {row}, столбце {col} стоит {got[row, col]:.4f}, а ожидалось "
                       f"{expected[row, col]:.4f}"))


@_exercise("ch03-attention-cost", "03_scale_encoders",
           "Count the attention scores of one long encoder and of four short ones", "easy",
           "predict")
def _check_attention_cost(answer: Any) -> None:
    try:
        single, multi = answer
    except (TypeError, ValueError):
        raise Hint(_tr("answer with a pair: (scores for 1,440 tokens, scores for the four scales)",
                       "ответьте парой: (число оценок внимания для 1440 токенов, число оценок "
                       "для четырёх масштабов)")) from None
    single = _number(single, _tr("the first number", "первое число"))
    multi = _number(multi, _tr("the second number", "второе число"))
    if single == 1440:
        raise Hint(_tr("every token attends to every token: the count grows with the square of "
                       "length",
                       "каждый токен смотрит на каждый: число оценок растёт пропорционально "
                       "квадрату длины"))
    if single != 1440**2:
        raise Hint(_tr("one head of self-attention over L tokens computes L x L scores",
                       "одна голова внимания (самовнимание) над L токенами вычисляет L x L "
                       "оценок"))
    if multi == (60 + 48 + 24 + 10) ** 2:
        raise Hint(_tr("each scale has its own encoder: add the squares, do not square the sum",
                       "у каждого масштаба свой энкодер: складывайте квадраты, а не возводите "
                       "в квадрат сумму"))
    if multi != 60**2 + 48**2 + 24**2 + 10**2:
        raise Hint(_tr("add up L x L for each scale's lookback: 60, 48, 24 and 10",
                       "сложите L x L по окну истории каждого масштаба: 60, 48, 24 и 10"))


# --------------------------------------------------------------------------------------------------
# Chapter 04: cross-scale attention
# --------------------------------------------------------------------------------------------------
def _attention_reference(q, k, v, mask):
    import torch

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


@_exercise("ch04-one-head", "04_cross_scale_attention",
           "Implement one head of masked attention", "medium", "code")
def _check_one_head(function: Any) -> None:
    import torch

    generator = torch.Generator().manual_seed(4)
    q = torch.randn(2, 4, 8, generator=generator)   # 4 queries: the last token of 4 scales
    k = torch.randn(2, 10, 8, generator=generator)  # 10 keys: all tokens of all scales
    v = torch.randn(2, 10, 8, generator=generator)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False  # missing history in the first sample
    expected_out, expected_weights = _attention_reference(q, k, v, mask)
    result = _call(function, q.clone(), k.clone(), v.clone(), mask.clone())
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Hint(_tr("return a pair (output, weights)", "верните пару (выход, веса)"))
    out = _as_float_array(result[0], _tr("output", "выход"))
    weights = _as_float_array(result[1], _tr("weights", "веса"))
    _expect_shape(weights, (2, 4, 10), _tr("weights", "веса"))
    _expect_shape(out, (2, 4, 8), _tr("output", "выход"))
    if weights[0, :, 7:].max() > 1e-6:
        raise Hint(_tr("masked keys received weight: set their scores to -inf before the softmax",
                       "ключи, закрытые маской, получили вес: присвойте их оценкам -inf "
                       "до софтмакса"))
    if not np.allclose(weights.sum(-1), 1.0, atol=1e-5):
        raise Hint(_tr("each query's weights must sum to 1 over the keys: softmax over the last "
                       "axis",
                       "веса каждого запроса должны в сумме по ключам давать 1: софтмакс "
                       "по последней оси"))
    unscaled, _ = _attention_reference(q * math.sqrt(8), k, v, mask)
    if np.allclose(out, unscaled.numpy(), atol=1e-5):
        raise Hint(_tr("divide the scores by sqrt(d) before the softmax",
                       "разделите оценки на sqrt(d) до софтмакса"))
    if not np.allclose(weights, expected_weights.numpy(), atol=1e-5):
        raise Hint(_tr("the weights differ from softmax(q k^T / sqrt(d)) over visible keys",
                       "веса отличаются от softmax(q k^T / sqrt(d)) по видимым ключам"))
    if not np.allclose(out, expected_out.numpy(), atol=1e-5):
        raise Hint(_tr("the weights are right but the output is not weights @ v",
                       "веса верные, но выход не равен weights @ v"))


@_exercise("ch04-masked-weight", "04_cross_scale_attention",
           "Predict the weights when one key is masked", "easy", "predict")
def _check_masked_weight(answer: Any) -> None:
    got = _as_float_array(answer, _tr("the three weights", "три веса"))
    _expect_shape(got, (3,), _tr("the weights", "веса"))
    expected = np.array([math.exp(2), 0.0, 1.0]) / (math.exp(2) + 1.0)
    if np.allclose(got, np.exp([2, 0, 0]) / np.exp([2, 0, 0]).sum(), atol=1e-3):
        raise Hint(_tr("the masked key takes no part in the softmax at all: its weight is "
                       "exactly 0",
                       "ключ, закрытый маской, вообще не участвует в софтмаксе: его вес ровно 0"))
    if got[1] != 0:
        raise Hint(_tr("a masked key gets weight exactly 0",
                       "ключ, закрытый маской, получает вес ровно 0"))
    if not np.isclose(got.sum(), 1.0, atol=1e-3):
        raise Hint(_tr("the weights of one query sum to 1", "веса одного запроса в сумме дают 1"))
    if not np.allclose(got, expected, atol=1e-3):
        raise Hint(_tr("softmax over the visible scores [2, 0]: e^2/(e^2+1) and 1/(e^2+1)",
                       "софтмакс по видимым оценкам [2, 0]: e^2/(e^2+1) и 1/(e^2+1)"))


# --------------------------------------------------------------------------------------------------
# Chapter 05: training
# --------------------------------------------------------------------------------------------------
@_exercise("ch05-purge-gap", "05_training", "Choose the purge gap", "easy", "predict")
def _check_purge_gap(answer: Any) -> None:
    try:
        gap = pd.Timedelta(answer) if not isinstance(answer, int | float) else pd.Timedelta(
            minutes=answer)
    except (TypeError, ValueError):
        raise Hint(_tr("answer with a duration such as '30min' or pd.Timedelta(hours=2)",
                       "ответьте длительностью, например '30min' или "
                       "pd.Timedelta(hours=2)")) from None
    if gap < pd.Timedelta("4h"):
        raise Hint(_tr("a training target at horizon 4h ends 4 hours after its decision time: a "
                       "shorter gap lets it overlap the validation period",
                       "обучающая цель на горизонте 4h заканчивается через 4 часа после момента "
                       "решения: при меньшем зазоре она заходит в период валидации"))
    if gap > pd.Timedelta("4h"):
        raise Hint(_tr("that is safe but wastes data: the longest horizon is enough",
                       "так безопасно, но данные пропадают зря: достаточно самого длинного "
                       "горизонта"))


@_exercise("ch05-early-stopping", "05_training", "Find where early stopping stops", "medium",
           "code")
def _check_early_stopping(function: Any) -> None:
    cases = [
        ([1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9], 3, (2, 5)),
        ([1.0, 0.9, 0.8, 0.7], 2, (3, 3)),
        ([0.5, 0.6, 0.5, 0.7], 2, (0, 2)),  # equal is not an improvement
    ]
    for losses, patience, expected in cases:
        got = _call(function, list(losses), patience)
        try:
            got = tuple(int(g) for g in got)
        except (TypeError, ValueError):
            raise Hint(_tr("return a pair of epoch numbers (best_epoch, stop_epoch)",
                           "верните пару номеров эпох (best_epoch, stop_epoch)")) from None
        if got == expected:
            continue
        if got[0] == expected[0] + 1:
            raise Hint(_tr("epochs are counted from 0, like Python indices",
                           "эпохи нумеруются с 0, как индексы в Python"))
        if got[0] == expected[0] and got[1] == expected[1] + 1:
            raise Hint(_tr(f"off by one: with patience {patience}, training stops after "
                           f"{patience} epochs in a row without improvement, at the last of them",
                           f"ошибка на единицу: при терпении {patience} ранняя остановка "
                           f"срабатывает на той эпохе, на которой число эпох подряд без "
                           f"улучшения достигает {patience}"))
        if got[0] != expected[0]:
            raise Hint(_tr(f"for losses {losses} the best epoch is {expected[0]} (the first "
                           "lowest; an equal loss is not an improvement)",
                           f"для потерь {losses} лучшая эпоха — {expected[0]} (первая "
                           "с наименьшей потерей; равная потеря — не улучшение)"))
        raise Hint(_tr(f"for losses {losses} and patience {patience}, expected {expected}, "
                       f"got {got}",
                       f"для потерь {losses} и терпения {patience} ожидалось {expected}, "
                       f"получено {got}"))


# --------------------------------------------------------------------------------------------------
# Chapter 06: prediction and interpretation
# --------------------------------------------------------------------------------------------------
@_exercise("ch06-wilson", "06_prediction_and_interpretation",
           "Compute a Wilson score interval", "medium", "code")
def _check_wilson(function: Any) -> None:
    k, n, z = 56, 100, 1.959963984540054
    centre = (k + z**2 / 2) / (n + z**2)
    half = z / (n + z**2) * math.sqrt(k * (n - k) / n + z**2 / 4)
    expected = (centre - half, centre + half)
    got = _call(function, k, n)
    try:
        low, high = (float(g) for g in got)
    except (TypeError, ValueError):
        raise Hint(_tr("return a pair (low, high)",
                       "верните пару (low, high): нижнюю и верхнюю границы")) from None
    p = k / n
    wald = (p - z * math.sqrt(p * (1 - p) / n), p + z * math.sqrt(p * (1 - p) / n))
    if np.allclose((low, high), wald, atol=1e-6):
        raise Hint(_tr("that is the Wald interval p ± z·sqrt(p(1-p)/n); Wilson's is centred at "
                       "(k + z²/2)/(n + z²)",
                       "это интервал Вальда p ± z·sqrt(p(1-p)/n); центр доверительного "
                       "интервала Уилсона — (k + z²/2)/(n + z²)"))
    if low > high:
        raise Hint(_tr("low and high are swapped",
                       "нижняя и верхняя границы перепутаны местами"))
    if not np.allclose((low, high), expected, atol=1e-4):
        raise Hint(_tr(f"for k={k}, n={n} expected ({expected[0]:.4f}, {expected[1]:.4f}), "
                       f"got ({low:.4f}, {high:.4f})",
                       f"при k={k}, n={n} ожидалось ({expected[0]:.4f}, {expected[1]:.4f}), "
                       f"получено ({low:.4f}, {high:.4f})"))
    edge_low, edge_high = (float(g) for g in _call(function, 0, 20))
    if edge_low < -1e-12 or not np.isclose(edge_low, 0.0, atol=1e-9):
        raise Hint(_tr("for k=0 the interval starts at exactly 0",
                       "при k=0 интервал начинается ровно с 0"))
    if not 0 < edge_high < 0.25:
        raise Hint(_tr("for k=0, n=20 the upper end should be about 0.16",
                       "при k=0, n=20 верхняя граница должна быть около 0.16"))


@_exercise("ch06-edge-captured", "06_prediction_and_interpretation",
           "How much of the oracle's edge does a model capture?", "easy", "predict")
def _check_edge_captured(answer: Any) -> None:
    share = _number(answer, _tr("the share", "доля"))
    if np.isclose(share, 0.58 / 0.64, atol=1e-3):
        raise Hint(_tr("measure the edge over the majority class, not from zero",
                       "отсчитывайте преимущество от мажоритарного класса, а не от нуля"))
    if np.isclose(share, 50.0):
        raise Hint(_tr("answer as a fraction (0.5 for a half), not a percentage",
                       "ответьте долей (0.5 — это половина), а не в процентах"))
    if not np.isclose(share, (0.58 - 0.52) / (0.64 - 0.52), atol=1e-3):
        raise Hint(_tr("(model - majority) / (oracle - majority)",
                       "(модель - мажоритарный класс) / (оракул - мажоритарный класс)"))


# --------------------------------------------------------------------------------------------------
# Chapter 07: backtest
# --------------------------------------------------------------------------------------------------
@_exercise("ch07-sharpe-se", "07_backtest", "The standard error of a Sharpe ratio", "medium",
           "code")
def _check_sharpe_se(function: Any) -> None:
    rng = np.random.default_rng(7)
    returns = 0.0008 + 0.01 * rng.standard_normal(500)
    original = returns.copy()
    sharpe = returns.mean() / returns.std(ddof=1)
    expected = math.sqrt((1 + 0.5 * sharpe**2) / len(returns))
    got = _number(_call(function, returns), _tr("the standard error", "стандартная ошибка"))
    if not np.array_equal(returns, original):
        raise Hint(_tr("your function changed its input: work on a copy",
                       "ваша функция изменила свои входные данные: работайте с копией"))
    if np.isclose(got, 1 / math.sqrt(len(returns)), rtol=1e-6):
        raise Hint(_tr("1/sqrt(n) ignores the estimated mean's effect: Lo's IID formula is "
                       "sqrt((1 + SR²/2) / n)",
                       "1/sqrt(n) не учитывает, что среднее тоже оценивается: формула Ло "
                       "для IID-доходностей — sqrt((1 + SR²/2) / n)"))
    if np.isclose(got, expected * math.sqrt(252), rtol=1e-3) or np.isclose(
            got, expected * math.sqrt(365), rtol=1e-3):
        raise Hint(_tr("return the per-period standard error; do not annualise it",
                       "верните стандартную ошибку за один период, не пересчитывайте её "
                       "в годовую"))
    if not np.isclose(got, expected, rtol=1e-3):
        raise Hint(_tr(f"expected {expected:.5f} for these returns, got {got:.5f}",
                       f"для этих доходностей ожидалось {expected:.5f}, получено {got:.5f}"))


@_exercise("ch07-kelly", "07_backtest", "Size a bet with the Kelly criterion", "easy", "code")
def _check_kelly(function: Any) -> None:
    cases = [(0.55, 1.0), (0.6, 2.0), (0.3, 1.5)]
    for p, b in cases:
        expected = p - (1 - p) / b
        got = _number(_call(function, p, b), _tr("the Kelly fraction", "доля по Келли"))
        if np.isclose(got, 2 * p - 1) and not np.isclose(expected, 2 * p - 1):
            raise Hint(_tr("2p - 1 holds only for even odds; in general f* = p - (1 - p) / b",
                           "2p - 1 верно только при выплате один к одному; в общем случае "
                           "f* = p - (1 - p) / b"))
        if np.isclose(got, max(expected, 0.0)) and expected < 0 and not np.isclose(got, expected):
            raise Hint(_tr("return the raw fraction: a negative value says 'take the other side'",
                           "верните долю как есть: отрицательное значение означает «займите "
                           "противоположную сторону»"))
        if not np.isclose(got, expected, atol=1e-9):
            raise Hint(_tr(f"for p={p}, b={b} expected {expected:.4f}, got {got:.4f}",
                           f"при p={p}, b={b} ожидалось {expected:.4f}, получено {got:.4f}"))


# --------------------------------------------------------------------------------------------------
# Chapter 08: case study on real data
# --------------------------------------------------------------------------------------------------
@_exercise("ch08-purged-past", "08_case_study",
           "Keep only the training times whose targets end before the test block", "medium", "code")
def _check_purged_past(function: Any) -> None:
    times = pd.date_range("2017-03-01 01:00", periods=200, freq="1h", tz="UTC", name="time")
    original = times.copy()
    test_start, purge = times[150], pd.Timedelta("1D")
    expected = times[times + purge <= test_start]
    got = _call(function, times, test_start, purge)
    if not times.equals(original):
        raise Hint(_tr("your function changed its input: work on a copy",
                       "ваша функция изменила свои входные данные: работайте с копией"))
    try:
        got = pd.DatetimeIndex(got)
    except (TypeError, ValueError):
        raise Hint(_tr(f"return the kept decision times (a DatetimeIndex), got "
                       f"{type(got).__name__}",
                       f"верните оставленные моменты решений (DatetimeIndex), а получен объект "
                       f"типа {type(got).__name__}")) from None
    if (got >= test_start).any():
        raise Hint(_tr("times at or after the start of the test block are not the past",
                       "моменты в начале тестового блока и позже — уже не прошлое"))
    if got.equals(times[times < test_start]):
        raise Hint(_tr("without a purge, the targets of the last training times (which look one "
                       "day ahead) end inside the test block: keep t only if t + purge <= test "
                       "start",
                       "без зазора цели последних обучающих моментов (горизонт — сутки вперёд) "
                       "заканчиваются внутри тестового блока: оставляйте t, только если "
                       "t + purge <= начало теста"))
    if got.equals(times[times + purge < test_start]):
        raise Hint(_tr("off by one bar: a target that ends exactly when the test block starts "
                       "is fine (use <=)",
                       "ошибка на один бар: цель, которая заканчивается ровно в момент начала "
                       "тестового блока, допустима (используйте <=)"))
    if not got.equals(expected):
        raise Hint(_tr(f"expected {len(expected)} times ending {expected[-1]}, got {len(got)}",
                       f"ожидалось моментов: {len(expected)} (последний — {expected[-1]}), "
                       f"получено: {len(got)}"))


@_exercise("ch08-coin-flip", "08_case_study",
           "How wide is a coin flip's interval?", "easy", "predict")
def _check_coin_flip(answer: Any) -> None:
    half = _number(answer, _tr("the half-width", "полуширина"))
    z, n = 1.959963984540054, 1000
    expected = z / (n + z**2) * math.sqrt(n * 0.25 + z**2 / 4)
    if np.isclose(half, 100 * expected, atol=0.1):
        raise Hint(_tr("answer as a fraction (0.01 for one percentage point), not in percent",
                       "ответьте долей (0.01 — это один процентный пункт), а не в процентах"))
    if np.isclose(half, math.sqrt(0.25 / n), atol=5e-4):
        raise Hint(_tr("that is one standard error; a 95% interval reaches about 1.96 of them",
                       "это одна стандартная ошибка, а 95%-ный интервал простирается примерно "
                       "на 1.96 стандартной ошибки"))
    if np.isclose(half, 2 * expected, atol=1e-3):
        raise Hint(_tr("that is the whole width: the half-width is from the centre to one end",
                       "это вся ширина, а полуширина — расстояние от центра до одного из концов"))
    if not np.isclose(half, expected, atol=1e-3):
        raise Hint(_tr("Wilson at k = n/2: about 1.96 * sqrt(0.25 / n)",
                       "доверительный интервал Уилсона при k = n/2: примерно "
                       "1.96 * sqrt(0.25 / n)"))


@_exercise("ch09-encoder-runs", "09_scaling_up",
           "How much work does streaming save?", "easy", "predict")
def _check_encoder_runs(answer: Any) -> None:
    fraction = _number(answer, _tr("the fraction", "доля"))
    runs = 1440 + 1440 // 5 + 1440 // 60 + 1  # 1-minute, 5-minute, hourly and daily encoder runs
    expected = runs / (4 * 1440)
    if np.isclose(fraction, runs, atol=1) or np.isclose(fraction, 4 * 1440 / runs, atol=0.01):
        raise Hint(_tr("answer as a fraction: the streaming predictor's runs / the "
                       "recomputation's runs",
                       "ответьте долей: число запусков потокового предсказателя / число запусков "
                       "при полном пересчёте"))
    if np.isclose(fraction, 0.25, atol=0.005):
        raise Hint(_tr("the coarser encoders run too, each time its bar closes: 288, 24 and 1 "
                       "times a day",
                       "более грубые энкодеры тоже запускаются, каждый — при закрытии своего "
                       "бара: 288, 24 и 1 раз в сутки"))
    if np.isclose(fraction, 100 * expected, atol=0.5):
        raise Hint(_tr("answer as a fraction (0.5 for half), not in percent",
                       "ответьте долей (0.5 — это половина), а не в процентах"))
    if not np.isclose(fraction, expected, atol=2e-3):
        raise Hint(_tr("count the encoder runs of each scale over 1,440 bars, then divide by "
                       "4 x 1,440",
                       "посчитайте запуски энкодера каждого масштаба за 1440 баров и разделите "
                       "на 4 x 1440"))


@_exercise("ch09-loss-factor", "09_scaling_up",
           "Which factor makes four processes take one process's step?", "medium", "predict")
def _check_loss_factor(answer: Any) -> None:
    factor = _number(answer, _tr("the factor", "множитель"))
    rows, world, mine = 90, 4, 22  # the last rank's slice of a 90-row batch on 4 ranks: 23, 23, 22, 22
    expected = mine / rows * world
    if np.isclose(factor, mine / rows, atol=1e-3):
        raise Hint(_tr("DistributedDataParallel divides the summed gradients by the world size: "
                       "multiply by it as well",
                       "DistributedDataParallel делит сумму градиентов на число процессов "
                       "(world size): умножьте и на него"))
    if np.isclose(factor, 1.0, atol=1e-3):
        raise Hint(_tr("the slices are not equal (23, 23, 22, 22): a plain average of the four "
                       "means weighs a row of the smaller slices more",
                       "части батча не равны (23, 23, 22, 22): простое среднее четырёх средних "
                       "придаёт строке из меньшей части больший вес"))
    if np.isclose(factor, 1 / expected, atol=1e-3):
        raise Hint(_tr("upside down: a rank with fewer rows than a quarter of the batch must "
                       "count less",
                       "дробь перевёрнута: процесс, у которого строк меньше четверти батча, "
                       "должен весить меньше"))
    if not np.isclose(factor, expected, atol=1e-3):
        raise Hint(_tr("the rank's share of the batch's rows, times the number of ranks",
                       "доля строк батча, доставшаяся процессу, умноженная на число процессов"))


# --------------------------------------------------------------------------------------------------
# student copies
# --------------------------------------------------------------------------------------------------
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:\s*->\s*(?P<stub>.+))?\s*$")
_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
_SOLUTION_BLOCK = re.compile(
    r"^(?P<fence>:{3,}|`{3,})\{solution\}.*?^(?P=fence)[ \t]*$\n?", re.M | re.S)


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region of ``source`` by its stub."""
    lines, out, inside = source.split("\n"), [], False
    for number, line in enumerate(lines, 1):
        begin = _BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}, line {number}: BEGIN SOLUTION inside another one")
            inside = True
            stub = begin["stub"] or "raise NotImplementedError  # your code here"
            out.append(begin["indent"] + stub.strip())
        elif _END.match(line):
            if not inside:
                raise ValueError(f"{where}, line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def solution_code(source: str) -> str:
    """The reference solution as a reader should see it: ``source`` without its marker lines."""
    return "\n".join(line for line in source.split("\n")
                     if not (_BEGIN.match(line) or _END.match(line)))


_CODE_CELL = re.compile(r"^(?P<open>`{3,})\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=open)[ \t]*$",
                        re.M | re.S)
_CELL_OPTIONS = re.compile(r"\A(?:---\n.*?^---\n|(?::[\w-]+:[^\n]*\n)+)\n?", re.M | re.S)
_SOLUTION_OPEN = re.compile(
    r"^(?P<fence>:{3,})\{solution\}[^\n]*\n(?P<options>(?:[ \t]*:[\w-]+:[^\n]*\n)*)", re.M)
_EXERCISE_OPEN = re.compile(r"^:{3,}\{exercise\}", re.M)


def web_edition(text: str, where: str = "page") -> str:
    """The MyST page the web book renders: each exercise as a student copy shows it, solution aside.

    Every code cell of ``text`` (a MyST notebook) that holds ``# BEGIN SOLUTION`` regions is
    replaced by its stub, exactly as in a student copy, so the book executes and shows what a
    learner starts from (the checker then reports "not attempted yet"). The reference code goes,
    without its marker lines, into the ``{solution}`` block that follows the exercise, which the
    book draws collapsed. A solution cell with no ``{solution}`` block after it, before the next
    exercise, is an error: its code would be shown nowhere.
    """
    out, pending, position = [], [], 0
    events = sorted([(m.start(), "cell", m) for m in _CODE_CELL.finditer(text)]
                    + [(m.start(), "solution", m) for m in _SOLUTION_OPEN.finditer(text)]
                    + [(m.start(), "exercise", m) for m in _EXERCISE_OPEN.finditer(text)],
                    key=lambda event: event[0])

    def unplaced() -> ValueError:
        line = text.count("\n", 0, pending[0][0]) + 1
        return ValueError(f"{where}, line {line}: an exercise's solution cell has no "
                          "{solution} block after it to hold its code")

    for start, kind, match in events:
        if kind == "exercise" and pending:
            raise unplaced()
        if kind == "cell" and "# BEGIN SOLUTION" in match["body"]:
            body = match["body"]
            options = _CELL_OPTIONS.match(body)
            head = options.group(0) if options else ""
            line = text.count("\n", 0, start) + 1
            stub = strip_solutions(body[len(head):], f"{where}, line {line}")
            pending.append((start, solution_code(body[len(head):]).strip("\n")))
            out.append(text[position:match.start("body")] + head + stub)
            position = match.end("body")
        elif kind == "solution" and pending:
            out.append(text[position:match.end()])
            fence = "`" * 3
            code = "\n\n".join(f"{fence}python\n{solution}\n{fence}" for _, solution in pending)
            out.append(f"\n{code}\n\n")
            position, pending = match.end(), []
    if pending:
        raise unplaced()
    return "".join(out) + text[position:]


_PLACEHOLDER = {"en": "*(The solution is in the teacher's edition of the book.)*\n",
                "ru": "*(Решение приведено в версии книги для преподавателя.)*\n"}


def make_student_copy(source: Path, destination: Path) -> int:
    """Write the student copy of one notebook; return how many solution regions were removed.

    The prose that stands in for a ``{solution}`` block is in the language of the source
    notebook's folder (:func:`language` from ``source``'s folder).
    """
    import nbformat

    placeholder = _PLACEHOLDER[language(start=Path(source).parent)]
    nb = nbformat.read(source, as_version=4)
    removed = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "# BEGIN SOLUTION" in cell.source:
            removed += cell.source.count("# BEGIN SOLUTION")
            cell.source = strip_solutions(cell.source, f"{source.name} cell {index}")
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown" and "{solution}" in cell.source:
            removed += len(_SOLUTION_BLOCK.findall(cell.source))
            cell.source = _SOLUTION_BLOCK.sub(lambda _: placeholder, cell.source)
    destination.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, destination)
    return removed


def make_student_copies(source_dir: Path, destination_dir: Path) -> dict[str, int]:
    """Write student copies of every ``NN_*.ipynb`` in ``source_dir`` into ``destination_dir``.

    When a ``.msa-language`` file (in ``source_dir`` or above) sets the source's language, the
    destination gets a copy of it, so the student copies talk the same language.
    """
    notebooks = sorted(Path(source_dir).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (NN_*.ipynb) in {source_dir}")
    language_file = _language_file(source_dir)
    if language_file is not None:
        content = language_file.read_text(encoding="utf-8-sig")
        _valid_language(content, f"language file {language_file}")
    counts = {nb.name: make_student_copy(nb, Path(destination_dir) / nb.name) for nb in notebooks}
    if language_file is not None:
        (Path(destination_dir) / LANGUAGE_FILE).write_text(content, encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msa_lib.exercises", description=__doc__.split(
        "\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    copies = sub.add_parser("make-student-copies", help="write notebooks without solution code")
    copies.add_argument("source", type=Path)
    copies.add_argument("destination", type=Path)
    sub.add_parser("list", help="list the exercises")
    args = parser.parse_args(argv)
    if args.command == "list":
        for ex in EXERCISES.values():
            print(f"{ex.id:24} {ex.chapter:34} {ex.difficulty:7} {ex.kind:8} {ex.title}")
        return 0
    try:
        counts = make_student_copies(args.source, args.destination)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, count in counts.items():
        print(f"{args.destination / name}: {count} solution(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
