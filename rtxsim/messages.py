"""Texts the router prints, English and Japanese.

[confirmed] texts come from real-device transcripts quoted in the project reference
(``Invalid command name``, ``Administrator use only``, ``Insufficient or too many parameters``,
``Parameter out of range``, the save question, the save message, the pager, and the Japanese
``コマンド名を確認してください`` / ``パラメータの数が不適当です`` /
``新しい設定を保存しますか? (Y/N)`` / ``セーブ中... CONFIG0 終了`` / ``---つづく---``).
The rest are best guesses: a driver must match errors with ``^(Error|エラー)\\s*[:：]``
and never an exact text.
"""

from __future__ import annotations

EN: dict[str, str] = {
    "invalid": "Error: Invalid command name",
    "admin_only": "Error: Administrator use only",
    "params": "Error: Insufficient or too many parameters",
    "range": "Error: Parameter out of range",
    "keyword": "Error: Illegal keyword",  # [unconfirmed]
    "no_pp": "Error: Execute pp select command beforehand",  # [unconfirmed]
    "no_tunnel": "Error: Execute tunnel select command beforehand",  # [unconfirmed]
    "password": "Error: Incorrect password",  # [unconfirmed]
    "save_question": "Save new configuration ? (Y/N)",
    "saving": "Saving ... CONFIG0 Done .",
    "more": "---more---",
}

JA: dict[str, str] = {
    "invalid": "エラー: コマンド名を確認してください",
    "admin_only": "エラー: このコマンドは管理レベルでのみ使用できます",  # [unconfirmed]
    "params": "エラー: パラメータの数が不適当です",
    "range": "エラー: パラメータが範囲を越えています",  # [unconfirmed]
    "keyword": "エラー: パラメータのキーワードが認識できません",  # [unconfirmed]
    "no_pp": "エラー: このコマンドは相手を選択してから実行してください",  # [unconfirmed]
    "no_tunnel": "エラー: このコマンドはトンネルを選択してから実行してください",  # [unconfirmed]
    "password": "エラー: パスワードが間違っています",  # [unconfirmed]
    "save_question": "新しい設定を保存しますか? (Y/N)",
    "saving": "セーブ中... CONFIG0 終了",
    "more": "---つづく---",
}

#: ``console character`` value → (message language, byte encoding on the wire).
CHARSETS: dict[str, tuple[str, str]] = {
    "ascii": ("en", "ascii"),
    "en.ascii": ("en", "ascii"),
    "ja.sjis": ("ja", "cp932"),
    "ja.utf8": ("ja", "utf-8"),
}


def text(key: str, charset: str) -> str:
    lang = CHARSETS.get(charset, ("en", "ascii"))[0]
    return (JA if lang == "ja" else EN)[key]
