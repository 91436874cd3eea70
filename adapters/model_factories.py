"""Model classes with the names, attributes and forward signatures of the competition's `model_factories`.

Rounds 5-7 pickled whole models whose classes live in a top-level module called `model_factories`.
Unpickling never calls `__init__`: it imports `model_factories.<Class>` and restores `__dict__`, so what
must match is the module and class names, the child-module attribute names and `forward`. The
constructors follow the competition's arguments so the generator can build look-alikes.

The classes declare `__module__ = "model_factories"` and this module registers itself under that name,
so models we save pickle exactly like the competition's and load wherever this package is installed.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

MODULE_NAME = "model_factories"


def _last_hidden(h_n: torch.Tensor, bidirectional: bool) -> torch.Tensor:
    """Final hidden state of the last layer, both directions concatenated when bidirectional."""
    if bidirectional:
        return torch.cat((h_n[-2], h_n[-1]), dim=1)
    return h_n[-1]


class LinearModel(nn.Module):
    """Embedding vector [N, 1, H] -> dropout -> linear -> logits [N, output_size]."""

    __module__ = MODULE_NAME

    def __init__(self, input_size: int, output_size: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(data[:, 0, :]))


class FCLinearModel(nn.Module):
    """[N, 1, H] -> n_layers of Linear + ReLU -> dropout -> linear (round 6)."""

    __module__ = MODULE_NAME

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float, n_layers: int):
        super().__init__()
        self.relu = nn.ReLU()
        sizes = [input_size] + [hidden_size] * n_layers
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.linear = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        x = data[:, 0, :]
        for layer in self.fc_layers:
            x = self.relu(layer(x))
        return self.linear(self.dropout(x))


class _RnnLinear(nn.Module):
    """Shared body of the GRU and LSTM heads: the RNN's final hidden state -> dropout -> linear."""

    rnn_class: type[nn.Module] = nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        dropout: float,
        bidirectional: bool,
        n_layers: int,
    ):
        super().__init__()
        self.rnn = self.rnn_class(
            input_size,
            hidden_size,
            num_layers=n_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=0 if n_layers < 2 else dropout,
        )
        self.linear = nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)
        self.dropout = nn.Dropout(dropout)

    def final_hidden(self, data: torch.Tensor) -> torch.Tensor:
        _, h_n = self.rnn(data)
        return h_n

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        self.rnn.flatten_parameters()
        hidden = _last_hidden(self.final_hidden(data), self.rnn.bidirectional)
        return self.linear(self.dropout(hidden))


class GruLinearModel(_RnnLinear):
    __module__ = MODULE_NAME
    rnn_class = nn.GRU


class LstmLinearModel(_RnnLinear):
    __module__ = MODULE_NAME
    rnn_class = nn.LSTM

    def final_hidden(self, data: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.rnn(data)
        return h_n


class NerLinearModel(nn.Module):
    """A transformer encoder with a token classifier (round 7). forward returns (loss or None, emissions)."""

    __module__ = MODULE_NAME

    def __init__(
        self,
        train_name: str | nn.Module,
        model_args: dict | None,
        tran_config,
        num_labels: int,
        dropout_prob: float = 0.1,
        ignore_index: int = -100,
    ):
        """`train_name` may be an already built transformer (offline); a name is loaded with AutoModel."""
        super().__init__()
        if isinstance(train_name, nn.Module):
            self.transformer = train_name
        else:
            from transformers import AutoModel

            self.transformer = AutoModel.from_pretrained(train_name, config=tran_config, **(model_args or {}))
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = nn.Linear(self.transformer.config.hidden_size, num_labels)
        self.num_labels = num_labels
        self.ignore_index = ignore_index

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        hidden = self.transformer(input_ids, attention_mask=attention_mask)[0]
        emissions = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            if attention_mask is not None:  # padding never counts, whatever its label says
                labels = labels.masked_fill(attention_mask == 0, self.ignore_index)
            loss = nn.functional.cross_entropy(
                emissions.reshape(-1, self.num_labels), labels.reshape(-1), ignore_index=self.ignore_index
            )
        return loss, emissions


# Pickles name these classes `model_factories.<Class>`: make that module name resolve to this one.
sys.modules.setdefault(MODULE_NAME, sys.modules[__name__])
