//! The refusals: a layer kiln does not import, named with its class and
//! the nearest layer kiln does import.

use super::KerasError;
use super::config::KLayer;

/// The nearest supported alternative to a Keras layer class.
fn alternative(class: &str) -> &'static str {
    match class {
        "RNN" | "ConvLSTM2D" | "ConvLSTM1D" | "GRUCell" | "LSTMCell" | "SimpleRNNCell"
        | "TimeDistributed" => "SimpleRNN, GRU or LSTM (optionally Bidirectional)",
        "Lambda" => {
            "the same computation in built-in layers (Rescaling for scaling, Activation, \
             Reshape, Flatten)"
        }
        "Conv1D" | "Convolution1D" | "Conv3D" | "Convolution3D" => {
            "Conv2D (reshape the input to [height, width, 1])"
        }
        "Conv2DTranspose" | "Conv1DTranspose" | "Conv3DTranspose" | "UpSampling2D" => {
            "none: kiln has no upsampling layer"
        }
        "MaxPooling1D" | "MaxPooling3D" | "MaxPool1D" | "MaxPool3D" => "MaxPooling2D",
        "AveragePooling1D" | "AveragePooling3D" | "AvgPool1D" | "AvgPool3D" => "AveragePooling2D",
        "GlobalMaxPooling2D"
        | "GlobalMaxPool2D"
        | "GlobalAveragePooling1D"
        | "GlobalAveragePooling3D"
        | "GlobalMaxPooling1D"
        | "GlobalAvgPool1D" => "GlobalAveragePooling2D",
        "LayerNormalization" | "GroupNormalization" | "UnitNormalization" => "BatchNormalization",
        "PReLU" | "ELU" | "ThresholdedReLU" => "LeakyReLU or ReLU",
        "Subtract" | "Average" | "Maximum" | "Minimum" | "Dot" => {
            "Add, Multiply or Concatenate (a subtraction: Add of the tensor times −1)"
        }
        "Sequential" | "Functional" | "Model" => {
            "the nested model's layers added to the outer model directly"
        }
        "Embedding" | "StringLookup" | "IntegerLookup" | "TextVectorization" | "Hashing"
        | "CategoryEncoding" => "none: kiln models take float features (encode them before kiln)",
        "Cropping2D" => "Conv2D with padding=\"same\", or ZeroPadding2D before a convolution",
        "Permute" | "RepeatVector" => "Reshape",
        "Resizing" | "CenterCrop" => "resize the images before they reach the model",
        "RandomFlip" | "RandomRotation" | "RandomZoom" | "RandomCrop" | "RandomTranslation"
        | "RandomContrast" | "RandomBrightness" => {
            "remove the augmentation layers before saving (they do nothing at inference)"
        }
        _ => {
            "Dense, Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, AveragePooling2D, \
             GlobalAveragePooling2D, Flatten, Reshape, BatchNormalization, Rescaling, \
             Normalization, Add, Multiply, Concatenate, SimpleRNN, GRU, LSTM, an Activation, \
             or a no-op (Dropout, GaussianNoise)"
        }
    }
}

/// A built-in layer class kiln does not import.
pub(super) fn unsupported(layer: &KLayer) -> KerasError {
    let what = match layer.class.as_str() {
        "Lambda" => "a Lambda layer runs arbitrary Python, which kiln cannot import",
        _ => "this layer is not supported",
    };
    KerasError::Layer {
        layer: layer.name.clone(),
        class: layer.class.clone(),
        problem: format!("{what}; nearest supported: {}", alternative(&layer.class)),
    }
}

/// A custom layer class (registered outside Keras).
pub(super) fn custom(layer: &KLayer, registered: &str) -> KerasError {
    KerasError::Layer {
        layer: layer.name.clone(),
        class: layer.class.clone(),
        problem: format!(
            "a custom layer class (`{registered}`), whose code is Python kiln cannot import; \
             nearest supported: {}",
            alternative(&layer.class)
        ),
    }
}
